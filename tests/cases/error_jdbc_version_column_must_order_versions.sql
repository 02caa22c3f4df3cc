-- exit: 1
-- stderr: option 'sink.version-column' = 'note'
-- stderr: a column of an integer, DECIMAL, DATE or TIMESTAMP type (`note` is STRING)
CREATE TABLE orders (id BIGINT, note STRING, PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'jdbc',
  'url' = 'jdbc:mysql://db:3306/shop', 'table-name' = 'orders', 'sink.version-column' = 'note');

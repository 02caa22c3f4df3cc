-- exit: 1
-- stderr: table `orders`: 'sink.version-column' makes upserts and deletes of a key conditional on its version, but the table has no PRIMARY KEY; declare PRIMARY KEY (…) NOT ENFORCED on `orders`
CREATE TABLE orders (id BIGINT, updated_at TIMESTAMP(3)) WITH ('connector' = 'jdbc',
  'url' = 'jdbc:postgresql://db:5432/shop', 'table-name' = 'orders', 'sink.version-column' = 'updated_at');

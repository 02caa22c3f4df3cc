-- exit: 1
-- stderr: option 'driver' = 'org.postgresql.Driver' of table `mismatch` is not valid; expected the MySQL/MariaDB driver class matching 'url'
CREATE TABLE mismatch (id BIGINT) WITH ('connector' = 'jdbc', 'url' = 'jdbc:mysql://db/shop', 'table-name' = 't',
  'driver' = 'org.postgresql.Driver');

-- Catalog statements; SHOW CREATE TABLE shows ${VAR} references as written, not their values.
-- env: ORDER_LABEL=orders
CREATE TABLE orders (
    order_id BIGINT COMMENT 'the key',
    amount   DECIMAL(65, 30),
    tags     ARRAY<STRING>,
    PRIMARY KEY (order_id) NOT ENFORCED
) COMMENT 'orders from the shop' WITH ('connector' = 'print', 'print-identifier' = '${ORDER_LABEL}');
CREATE TABLE IF NOT EXISTS orders (x INT) WITH ('connector' = 'blackhole');
CREATE TABLE sink (id INT) WITH ('connector' = 'print');
SHOW TABLES;
DESCRIBE orders;
SHOW CREATE TABLE orders;
DROP TABLE sink;
DROP TABLE IF EXISTS sink;
SHOW TABLES;

-- A doris sink in exactly-once mode loads once per checkpoint: without an interval it would hold
-- every row until the job ends, so planning refuses it with the fixes (nothing is contacted).
-- exit: 1
-- stderr: table `orders_doris` (connector 'doris') writes only at checkpoints, and this job takes none: set 'execution.checkpointing.interval' before the INSERT (e.g. to '10s'). In exactly-once mode ('sink.enable-2pc', on by default)
-- stderr: To load at-least-once by size and time instead, add 'sink.enable.batch-mode' = 'true'.
CREATE TABLE orders (id INT) WITH ('connector' = 'datagen', 'number-of-rows' = '3');
CREATE TABLE orders_doris (id INT) WITH (
    'connector' = 'doris', 'fenodes' = '127.0.0.1:1', 'table.identifier' = 'shop.orders', 'username' = 'root'
);
INSERT INTO orders_doris SELECT id FROM orders;

-- exit: 1
-- stderr: table `customers` (connector 'datagen') cannot be looked up: FOR SYSTEM_TIME AS OF needs a table whose connector finds rows by key ('jdbc')
CREATE TABLE orders (id BIGINT, customer BIGINT, proc AS PROCTIME()) WITH ('connector' = 'datagen', 'number-of-rows' = '5');
CREATE TABLE customers (id BIGINT, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '5');
CREATE TABLE out (id BIGINT, name STRING) WITH ('connector' = 'print');
INSERT INTO out SELECT o.id, c.name FROM orders AS o JOIN customers FOR SYSTEM_TIME AS OF o.proc AS c ON o.customer = c.id;

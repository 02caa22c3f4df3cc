-- exit: 1
-- stderr: EXISTS, NOT EXISTS and [NOT] IN (sub-query) are not supported on a changelog stream yet
CREATE TABLE orders (id BIGINT, customer BIGINT, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'number-of-rows' = '5');
CREATE TABLE customers (id BIGINT, name STRING, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'number-of-rows' = '5');
CREATE TABLE out (id BIGINT) WITH ('connector' = 'print');
INSERT INTO out SELECT id FROM orders WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = orders.customer);

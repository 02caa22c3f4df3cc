-- exit: 1
-- stderr: NOT IN (sub-query) is not supported on a changelog stream
-- One NULL among the sub-query's values makes NOT IN unknown for every row; NOT EXISTS is offered.
CREATE TABLE orders (id BIGINT, customer BIGINT, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'number-of-rows' = '5');
CREATE TABLE customers (id BIGINT, name STRING, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'number-of-rows' = '5');
CREATE TABLE out (id BIGINT) WITH ('connector' = 'print');
INSERT INTO out SELECT id FROM orders WHERE customer NOT IN (SELECT id FROM customers);

-- exit: 1
-- stderr: PRIMARY KEY
CREATE TABLE orders (id BIGINT, customer INT, amount INT, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'number-of-rows' = '5');
CREATE TABLE per_customer (customer INT, total BIGINT)
    WITH ('connector' = 'jdbc', 'url' = 'jdbc:postgresql://127.0.0.1:1/none', 'table-name' = 'per_customer');
INSERT INTO per_customer SELECT customer, SUM(amount) FROM orders GROUP BY customer;

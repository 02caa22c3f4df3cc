-- exit: 1
-- stderr: sink `per_customer` has PRIMARY KEY (region) but the query's result is keyed by (customer), its GROUP BY columns: each update would land on the wrong row
CREATE TABLE orders (id BIGINT, customer INT, region INT, amount INT, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'number-of-rows' = '5');
CREATE TABLE per_customer (customer INT, region INT, total BIGINT, PRIMARY KEY (region) NOT ENFORCED)
    WITH ('connector' = 'jdbc', 'url' = 'jdbc:postgresql://127.0.0.1:1/none', 'table-name' = 'per_customer');
INSERT INTO per_customer SELECT customer, MAX(region), SUM(amount) FROM orders GROUP BY customer;

-- exit: 1
-- stderr: sink `enriched` has PRIMARY KEY (id) but the query's result has no key it covers
-- A RIGHT JOIN pads customers without orders with NULL order ids, so the order id alone is no key
-- of its result (it is for a LEFT JOIN that looks customers up by their key).
CREATE TABLE orders (id BIGINT, customer BIGINT, amount INT, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'number-of-rows' = '5');
CREATE TABLE customers (id BIGINT, name STRING, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'number-of-rows' = '5');
CREATE TABLE enriched (id BIGINT, amount INT, name STRING, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'jdbc', 'url' = 'jdbc:postgresql://127.0.0.1:1/none', 'table-name' = 'enriched');
INSERT INTO enriched SELECT o.id, o.amount, c.name FROM orders o RIGHT JOIN customers c ON o.customer = c.id;

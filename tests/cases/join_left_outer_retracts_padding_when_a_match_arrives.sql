-- materialized
-- Regular joins over two changelogs (inserts, updates, deletes), in batches of three rows so that
-- the joined rows change many times. `o` and `c` show the tables the changes leave; `enriched`
-- (a LEFT JOIN into a sink keyed by the order id, the orders' key: customers are looked up by
-- theirs) must end as the LEFT JOIN of those tables: an order whose customer appears later is
-- first padded with NULLs, and that row is retracted when the customer arrives (otherwise the
-- order would end up in the sink twice); customer 4 never exists, and customer 1 is deleted in
-- the end, so its order is padded again. `revenue` is a GROUP BY over an inner join: per customer
-- name, the sum of its orders.
SET 'datafusion.execution.batch_size' = '3';
CREATE TABLE orders (
    id       BIGINT,
    customer BIGINT,
    amount   INT,
    PRIMARY KEY (id) NOT ENFORCED
) WITH (
    'connector' = 'datagen', 'changelog-mode' = 'all', 'changelog.key-space' = '6',
    'number-of-rows' = '30', 'rows-per-second' = '1000000', 'seed' = '16',
    'fields.customer.min' = '1', 'fields.customer.max' = '4', 'fields.amount.min' = '1', 'fields.amount.max' = '9'
);
CREATE TABLE customers (
    id   BIGINT,
    name STRING,
    PRIMARY KEY (id) NOT ENFORCED
) WITH (
    'connector' = 'datagen', 'changelog-mode' = 'all', 'changelog.key-space' = '3',
    'number-of-rows' = '12', 'rows-per-second' = '1000000', 'seed' = '7', 'fields.name.length' = '3'
);
CREATE TABLE o (id BIGINT, customer BIGINT, amount INT) WITH ('connector' = 'print', 'print-identifier' = 'o');
CREATE TABLE c (id BIGINT, name STRING) WITH ('connector' = 'print', 'print-identifier' = 'c');
CREATE TABLE enriched (id BIGINT, amount INT, customer BIGINT, name STRING, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'print', 'print-identifier' = 'enriched');
CREATE TABLE revenue (name STRING, total BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'revenue');

EXECUTE STATEMENT SET BEGIN
  INSERT INTO o SELECT * FROM orders;
  INSERT INTO c SELECT * FROM customers;
  INSERT INTO enriched SELECT o.id, o.amount, o.customer, c.name FROM orders o LEFT JOIN customers c ON o.customer = c.id;
  INSERT INTO revenue SELECT c.name, SUM(o.amount) FROM orders o JOIN customers c ON o.customer = c.id GROUP BY c.name;
END;

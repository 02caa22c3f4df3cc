-- exit: 1
-- stderr: sink `enriched` has PRIMARY KEY (id) but the query's result has no key it covers
-- stderr: 'table.exec.sink.upsert-materialize' = 'NONE' into
-- stderr: column `id` of sink `enriched` is NOT NULL but the query produced NULL for it
-- Under NONE (Flink's: the user vouches that the keys fit) the job runs without an upsert
-- materializer, warning why the key does not fit; under AUTO (the default) one is put before the sink.
-- Here the warning is borne out: the first padded row has no id for the sink's key.
-- A RIGHT JOIN pads customers without orders with NULL order ids, so the order id alone is no key
-- of its result (it is for a LEFT JOIN that looks customers up by their key).
SET 'table.exec.sink.upsert-materialize' = 'NONE';
CREATE TABLE orders (id BIGINT, customer BIGINT, amount INT, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'number-of-rows' = '5');
CREATE TABLE customers (id BIGINT, name STRING, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'number-of-rows' = '5');
CREATE TABLE enriched (id BIGINT, amount INT, name STRING, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'blackhole');
INSERT INTO enriched SELECT o.id, o.amount, c.name FROM orders o RIGHT JOIN customers c ON o.customer = c.id;

-- stderr: sink `per_customer` has PRIMARY KEY (region) but the query's result is keyed by (customer), its GROUP BY columns: each update would land on the wrong row
-- stderr: 'table.exec.sink.upsert-materialize' = 'NONE' into
-- Under NONE (Flink's: the user vouches that the keys fit) the job runs without an upsert
-- materializer, warning why the key does not fit; under AUTO (the default) one is put before the sink.
SET 'table.exec.sink.upsert-materialize' = 'NONE';
CREATE TABLE orders (id BIGINT, customer INT, region INT, amount INT, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'number-of-rows' = '5');
CREATE TABLE per_customer (customer INT, region INT, total BIGINT, PRIMARY KEY (region) NOT ENFORCED)
    WITH ('connector' = 'blackhole');
INSERT INTO per_customer SELECT customer, MAX(region), SUM(amount) FROM orders GROUP BY customer;

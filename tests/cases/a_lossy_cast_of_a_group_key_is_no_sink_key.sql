-- stderr: sink `s` has PRIMARY KEY (p) but the query's result has no key it covers
-- stderr: 'table.exec.sink.upsert-materialize' = 'NONE' into
-- Under NONE (Flink's: the user vouches that the keys fit) the job runs without an upsert
-- materializer, warning why the key does not fit; under AUTO (the default) one is put before the sink.
-- CAST(price AS INT) puts the groups 1.2 and 1.7 on one sink row: it is not the GROUP BY key.
SET 'table.exec.sink.upsert-materialize' = 'NONE';
CREATE TABLE t (id BIGINT, price DOUBLE, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'number-of-rows' = '5');
CREATE TABLE s (p INT, n BIGINT, PRIMARY KEY (p) NOT ENFORCED)
    WITH ('connector' = 'blackhole');
INSERT INTO s SELECT CAST(price AS INT), COUNT(*) FROM t GROUP BY price;

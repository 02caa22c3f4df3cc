-- stderr: sink `top2` has PRIMARY KEY (k) but the query's result is keyed by (k, rn), its PARTITION BY columns and row number
-- stderr: 'table.exec.sink.upsert-materialize' = 'NONE' into
-- Under NONE (Flink's: the user vouches that the keys fit) the job runs without an upsert
-- materializer, warning why the key does not fit; under AUTO (the default) one is put before the sink.
SET 'table.exec.sink.upsert-materialize' = 'NONE';
CREATE TABLE events (id BIGINT, k INT, ts INT, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'number-of-rows' = '5');
CREATE TABLE top2 (k INT, rn BIGINT, ts INT, PRIMARY KEY (k) NOT ENFORCED) WITH ('connector' = 'blackhole');
INSERT INTO top2 SELECT k, CAST(rn AS BIGINT), ts FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts DESC) AS rn FROM events
) WHERE rn <= 2;

-- materialized
-- Flink's deduplication and Top-N over a changelog (inserts, updates, deletes of events keyed by
-- id), in batches of three rows. Events of a device `k` arrive out of order: `latest` keeps, per
-- device, the event with the greatest `ts` (a late event with a smaller ts does not replace it;
-- when the latest is deleted or updated to an older ts, the next one moves up); `first` keeps the
-- smallest; `top2` the two latest with their numbers, keyed by device and number. `src` shows the
-- events the changes leave, from which each result can be checked.
SET 'datafusion.execution.batch_size' = '3';
CREATE TABLE events (
    id BIGINT,
    k  INT,
    ts INT,
    PRIMARY KEY (id) NOT ENFORCED
) WITH (
    'connector' = 'datagen', 'changelog-mode' = 'all', 'changelog.key-space' = '8',
    'number-of-rows' = '40', 'rows-per-second' = '1000000', 'seed' = '11',
    'fields.k.min' = '0', 'fields.k.max' = '1', 'fields.ts.min' = '0', 'fields.ts.max' = '99'
);
CREATE TABLE src (id BIGINT, k INT, ts INT) WITH ('connector' = 'print', 'print-identifier' = 'src');
CREATE TABLE latest (k INT, ts INT, id BIGINT, PRIMARY KEY (k) NOT ENFORCED)
    WITH ('connector' = 'print', 'print-identifier' = 'latest');
CREATE TABLE first (k INT, ts INT, id BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'first');
CREATE TABLE top2 (k INT, rn BIGINT, ts INT, id BIGINT, PRIMARY KEY (k, rn) NOT ENFORCED)
    WITH ('connector' = 'print', 'print-identifier' = 'top2');

EXECUTE STATEMENT SET BEGIN
  INSERT INTO src SELECT * FROM events;
  INSERT INTO latest SELECT k, ts, id FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts DESC, id DESC) AS rn FROM events
  ) WHERE rn = 1;
  INSERT INTO first SELECT k, ts, id FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts ASC, id) AS rn FROM events
  ) WHERE rn = 1;
  INSERT INTO top2 SELECT k, rn, ts, id FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts DESC, id DESC) AS rn FROM events
  ) WHERE rn <= 2;
END;

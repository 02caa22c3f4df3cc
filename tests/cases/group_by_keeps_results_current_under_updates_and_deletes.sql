-- materialized
-- A GROUP BY over a changelog (inserts, updates that move rows between groups, deletes), in
-- batches of three rows so that groups change many times: `src` shows the table the changes
-- leave, `agg` the per-group result they leave, which must be that table's GROUP BY. MIN and MAX
-- give way to the next value when the extreme is updated away; the group g = 0 loses its last
-- row and is deleted.
SET 'datafusion.execution.batch_size' = '3';
CREATE TABLE src (
    id BIGINT,
    g  INT,
    v  INT,
    PRIMARY KEY (id) NOT ENFORCED
) WITH (
    'connector' = 'datagen', 'changelog-mode' = 'all', 'changelog.key-space' = '6',
    'number-of-rows' = '40', 'rows-per-second' = '1000000', 'seed' = '7',
    'fields.g.min' = '0', 'fields.g.max' = '2', 'fields.v.min' = '0', 'fields.v.max' = '99'
);
CREATE TABLE rows_out (id BIGINT, g INT, v INT) WITH ('connector' = 'print', 'print-identifier' = 'src');
CREATE TABLE agg (g INT, n BIGINT, s BIGINT, lo INT, hi INT, a DOUBLE, big BIGINT)
    WITH ('connector' = 'print', 'print-identifier' = 'agg');

EXECUTE STATEMENT SET BEGIN
  INSERT INTO rows_out SELECT * FROM src;
  INSERT INTO agg SELECT g, COUNT(*), SUM(v), MIN(v), MAX(v), AVG(v), COUNT(*) FILTER (WHERE v >= 50)
    FROM src GROUP BY g;
END;

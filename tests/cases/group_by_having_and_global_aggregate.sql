-- materialized
-- HAVING keeps a group only while its condition holds (a group that stops passing is deleted,
-- one that starts passing is inserted); a global aggregate is one row kept current.
SET 'datafusion.execution.batch_size' = '4';
CREATE TABLE src (
    id BIGINT,
    g  INT,
    v  INT,
    PRIMARY KEY (id) NOT ENFORCED
) WITH (
    'connector' = 'datagen', 'changelog-mode' = 'all', 'changelog.key-space' = '8',
    'number-of-rows' = '60', 'rows-per-second' = '1000000', 'seed' = '3',
    'fields.g.min' = '0', 'fields.g.max' = '3', 'fields.v.min' = '0', 'fields.v.max' = '99'
);
CREATE TABLE rows_out (id BIGINT, g INT, v INT) WITH ('connector' = 'print', 'print-identifier' = 'src');
CREATE TABLE big (g INT, n BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'big');
CREATE TABLE total (n BIGINT, s BIGINT, groups BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'total');

EXECUTE STATEMENT SET BEGIN
  INSERT INTO rows_out SELECT * FROM src;
  INSERT INTO big SELECT g, COUNT(*) FROM src GROUP BY g HAVING SUM(v) > 100;
  INSERT INTO total SELECT COUNT(*), SUM(v), COUNT(DISTINCT g) FROM src;
END;

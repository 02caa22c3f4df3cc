-- materialized
-- FIRST_VALUE, LAST_VALUE and LISTAGG over a GROUP BY keep the group's values in arrival order
-- (here the order of the sequence ids, in batches of three); NULL values are skipped, a FILTER
-- decides which rows a call sees, LISTAGG's separator is ',' unless given.
SET 'datafusion.execution.batch_size' = '3';
CREATE TABLE src (
    id   INT,
    g    INT,
    name STRING
) WITH (
    'connector' = 'datagen', 'number-of-rows' = '10', 'seed' = '11',
    'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '10',
    'fields.g.min' = '0', 'fields.g.max' = '1',
    'fields.name.length' = '2', 'fields.name.null-rate' = '0.2'
);
CREATE TABLE rows_out (id INT, g INT, name STRING) WITH ('connector' = 'print', 'print-identifier' = 'src');
CREATE TABLE agg (g INT, first_name STRING, last_id INT, names STRING, odd_names STRING)
    WITH ('connector' = 'print', 'print-identifier' = 'agg');
EXECUTE STATEMENT SET BEGIN
  INSERT INTO rows_out SELECT * FROM src;
  INSERT INTO agg SELECT g, FIRST_VALUE(name), LAST_VALUE(id), LISTAGG(name), LISTAGG(name, ' ') FILTER (WHERE id % 2 = 1)
    FROM src GROUP BY g;
END;

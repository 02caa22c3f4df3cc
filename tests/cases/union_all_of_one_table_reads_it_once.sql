-- A table in several branches of a UNION ALL is one input: one source, read once, each batch
-- through every branch in the order the query names them.
CREATE TABLE numbers (n BIGINT) WITH (
    'connector' = 'datagen', 'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '4'
);
CREATE TABLE out (kind STRING, n BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'out');

INSERT INTO out
SELECT 'odd', n FROM numbers WHERE n % 2 = 1
UNION ALL
SELECT 'all', n * 10 FROM numbers;

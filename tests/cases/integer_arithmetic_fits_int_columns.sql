-- `n + 100` is BIGINT in DataFusion (integer literals are BIGINT) but fits the INT column.
CREATE TABLE numbers (n INT) WITH (
    'connector' = 'datagen', 'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '3'
);
CREATE TABLE out (n INT) WITH ('connector' = 'print');
INSERT INTO out SELECT n + 100 FROM numbers;

-- INSERT INTO t (cols) SELECT …: named columns in any order, the others NULL.
CREATE TABLE numbers (n INT) WITH (
    'connector' = 'datagen', 'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '3'
);
CREATE TABLE out (a INT, b STRING, c BIGINT) WITH ('connector' = 'print');
INSERT INTO out (c, a) SELECT n * 10, n FROM numbers;

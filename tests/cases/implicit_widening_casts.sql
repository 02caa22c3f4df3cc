-- Values widen into sink columns without an explicit CAST when nothing can be lost.
CREATE TABLE src (i SMALLINT, d DECIMAL(6, 2), u INT UNSIGNED) WITH (
    'connector' = 'datagen', 'number-of-rows' = '3', 'seed' = '5',
    'fields.i.min' = '-100', 'fields.i.max' = '100',
    'fields.d.min' = '-10', 'fields.d.max' = '10',
    'fields.u.min' = '4000000000', 'fields.u.max' = '4294967295'
);
CREATE TABLE out (i BIGINT, d DECIMAL(20, 4), u BIGINT, f DOUBLE) WITH ('connector' = 'print');
INSERT INTO out SELECT i, d, u, i AS f FROM src;

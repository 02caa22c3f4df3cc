-- exit: 1
-- stderr: column `v` of sink `out` is NOT NULL but the query produced NULL for it, in +I[
CREATE TABLE src (id INT, v INT) WITH (
    'connector' = 'datagen', 'number-of-rows' = '20', 'seed' = '1', 'fields.v.null-rate' = '0.5'
);
CREATE TABLE out (id INT, v INT NOT NULL) WITH ('connector' = 'print');
INSERT INTO out SELECT id, v FROM src;

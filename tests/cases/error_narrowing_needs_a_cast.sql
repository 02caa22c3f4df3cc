-- exit: 1
-- stderr: cannot write the query's column 1 (`d`, DOUBLE) into column `id` of sink `out`, which is INT; add CAST(… AS INT)
CREATE TABLE src (d DOUBLE) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE out (id INT) WITH ('connector' = 'print');
INSERT INTO out SELECT d FROM src;

-- exit: 1
-- stderr: cannot write the query's column 1 (`id`, BIGINT) into column `id` of sink `out`, which is INT
CREATE TABLE src (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE out (id INT) WITH ('connector' = 'print');
INSERT INTO out SELECT id FROM src;

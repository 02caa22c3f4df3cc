-- exit: 1
-- stderr: error_unknown_column.sql:6:1:
-- stderr: column `nmae` not found. Did you mean `name`? Columns here: `id`, `name`
CREATE TABLE src (id INT, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE out (id INT, name STRING) WITH ('connector' = 'print');
INSERT INTO out SELECT id, nmae FROM src;

-- exit: 1
-- stderr: error_unknown_column.sql:6:1:
-- stderr: No field named nmae
CREATE TABLE src (id INT, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE out (id INT, name STRING) WITH ('connector' = 'print');
INSERT INTO out SELECT id, nmae FROM src;

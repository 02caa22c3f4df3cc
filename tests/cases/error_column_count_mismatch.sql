-- exit: 1
-- stderr: the query gives 1 columns but sink `out` takes 2 (id, name)
CREATE TABLE src (id INT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE out (id INT, name STRING) WITH ('connector' = 'print');
INSERT INTO out SELECT id FROM src;

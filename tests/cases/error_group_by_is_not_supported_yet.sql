-- exit: 1
-- stderr: GROUP BY and aggregate functions over a changelog are not supported yet
CREATE TABLE src (id INT, v INT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE out (v INT, n BIGINT) WITH ('connector' = 'print');
INSERT INTO out SELECT v, COUNT(*) FROM src GROUP BY v;

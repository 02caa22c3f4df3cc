-- exit: 1
-- stderr: aggregate function MEDIAN is not supported over a changelog yet; supported: COUNT, SUM, AVG, MIN, MAX
CREATE TABLE src (g INT, v INT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE out (g INT, m DOUBLE) WITH ('connector' = 'print');
INSERT INTO out SELECT g, MEDIAN(v) FROM src GROUP BY g;

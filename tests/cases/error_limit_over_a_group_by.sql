-- exit: 1
-- stderr: LIMIT over the result of a GROUP BY (an updating result) is not supported
CREATE TABLE src (g INT, v INT) WITH ('connector' = 'datagen', 'number-of-rows' = '5');
CREATE TABLE out (g INT, n BIGINT) WITH ('connector' = 'print');
INSERT INTO out SELECT g, COUNT(*) FROM src GROUP BY g LIMIT 3;

-- exit: 1
-- stderr: UNION without ALL removes duplicates, which needs state; UNION ALL is supported
CREATE TABLE a (n BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE b (n BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE out (n BIGINT) WITH ('connector' = 'print');
INSERT INTO out SELECT n FROM a UNION SELECT n FROM b;

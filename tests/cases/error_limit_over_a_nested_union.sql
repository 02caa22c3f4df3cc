-- exit: 1
-- stderr: a LIMIT over a UNION ALL that is itself one branch of a UNION ALL is not supported
CREATE TABLE a (n BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE b (n BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE c (n BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE out (n BIGINT) WITH ('connector' = 'print');
INSERT INTO out
SELECT * FROM (SELECT * FROM (SELECT n FROM a UNION ALL SELECT n FROM b) LIMIT 5)
UNION ALL
SELECT n FROM c;

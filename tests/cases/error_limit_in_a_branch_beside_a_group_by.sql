-- exit: 1
-- stderr: a LIMIT inside one branch of a UNION ALL whose other branches keep state
CREATE TABLE t1 (a BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '5');
CREATE TABLE t2 (a BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '5');
CREATE TABLE out (a BIGINT) WITH ('connector' = 'print');
INSERT INTO out SELECT * FROM (SELECT a FROM t1 LIMIT 2) UNION ALL SELECT a FROM t2 GROUP BY a;

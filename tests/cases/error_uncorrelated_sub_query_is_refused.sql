-- exit: 1
-- stderr: a sub-query that does not refer to the outer query's columns
-- stderr: CROSS JOIN (SELECT AVG(v) AS a FROM t2) s WHERE v > s.a
-- DataFusion would run such a sub-query once, not keep it current; its rewrite as a join is offered.
CREATE TABLE t1 (id BIGINT, v INT, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'number-of-rows' = '5');
CREATE TABLE t2 (id BIGINT, v INT, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'number-of-rows' = '5');
CREATE TABLE out (id BIGINT, v INT) WITH ('connector' = 'print');
INSERT INTO out SELECT id, v FROM t1 WHERE v > (SELECT AVG(v) FROM t2);

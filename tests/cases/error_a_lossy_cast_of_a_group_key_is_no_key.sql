-- exit: 1
-- stderr: sink `s` has PRIMARY KEY (p) but the query's result has no key it covers
-- CAST(price AS INT) puts the groups 1.2 and 1.7 on one sink row: it is not the GROUP BY key.
CREATE TABLE t (id BIGINT, price DOUBLE, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'number-of-rows' = '5');
CREATE TABLE s (p INT, n BIGINT, PRIMARY KEY (p) NOT ENFORCED)
    WITH ('connector' = 'jdbc', 'url' = 'jdbc:postgresql://127.0.0.1:1/none', 'table-name' = 's');
INSERT INTO s SELECT CAST(price AS INT), COUNT(*) FROM t GROUP BY price;

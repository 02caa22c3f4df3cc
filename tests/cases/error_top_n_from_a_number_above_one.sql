-- exit: 1
-- stderr: keeping the rows numbered 2 to 3 is not supported: a Top-N here keeps rows from number 1 on
CREATE TABLE src (id BIGINT, g INT, v INT) WITH ('connector' = 'datagen', 'number-of-rows' = '5');
CREATE TABLE out (id BIGINT, g INT, v INT) WITH ('connector' = 'print');
INSERT INTO out SELECT id, g, v FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY g ORDER BY v) AS rn FROM src)
    WHERE rn BETWEEN 2 AND 3;

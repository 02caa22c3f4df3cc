-- exit: 1
-- stderr: ROW_NUMBER() OVER (…) is supported only in Flink's deduplication and Top-N pattern, SELECT … FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts DESC) AS rn FROM t) WHERE rn <= N
CREATE TABLE src (id BIGINT, g INT, v INT) WITH ('connector' = 'datagen', 'number-of-rows' = '5');
CREATE TABLE out (id BIGINT, rn BIGINT) WITH ('connector' = 'print');
INSERT INTO out SELECT id, ROW_NUMBER() OVER (PARTITION BY g ORDER BY v) FROM src;

-- exit: 1
-- stderr: LAG(…) OVER (…) is not supported on a changelog stream; of the OVER windows only ROW_NUMBER() in Flink's deduplication and Top-N pattern is
CREATE TABLE src (id BIGINT, g INT, v INT) WITH ('connector' = 'datagen', 'number-of-rows' = '5');
CREATE TABLE out (id BIGINT, prev INT) WITH ('connector' = 'print');
INSERT INTO out SELECT id, LAG(v) OVER (PARTITION BY g ORDER BY id) FROM src;

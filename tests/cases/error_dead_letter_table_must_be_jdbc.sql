-- exit: 1
-- stderr: 'dead-letter.table' = 'dlq': table `dlq` has connector 'blackhole', not 'jdbc'; declare it as CREATE TABLE dlq (job STRING
SET 'dead-letter.table' = 'dlq';
CREATE TABLE dlq (job STRING) WITH ('connector' = 'blackhole');
CREATE TABLE src (id INT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE out (id INT) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT * FROM src;

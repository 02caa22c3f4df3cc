-- exit: 1
-- stderr: BEGIN STATEMENT SET is never closed
CREATE TABLE src (id INT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE out (id INT) WITH ('connector' = 'print');
BEGIN STATEMENT SET;
INSERT INTO out SELECT id FROM src;

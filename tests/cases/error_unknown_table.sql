-- exit: 1
-- stderr: table `nope` does not exist (tables: src)
CREATE TABLE src (id INT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
INSERT INTO nope SELECT id FROM src;

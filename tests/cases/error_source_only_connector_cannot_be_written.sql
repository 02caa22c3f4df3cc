-- exit: 1
-- stderr: table `g2` (connector 'datagen') cannot be written: the connector only reads
CREATE TABLE g1 (id INT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE g2 (id INT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
INSERT INTO g2 SELECT id FROM g1;

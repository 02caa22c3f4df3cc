-- exit: 1
-- stderr: table `p` (connector 'print') cannot be read: the connector only writes
CREATE TABLE p (id INT) WITH ('connector' = 'print');
CREATE TABLE out (id INT) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT id FROM p;

-- exit: 1
-- stderr: 'changelog-mode' = 'all' needs a PRIMARY KEY of one integer column
CREATE TABLE t (name STRING, PRIMARY KEY (name) NOT ENFORCED) WITH ('connector' = 'datagen', 'changelog-mode' = 'all');

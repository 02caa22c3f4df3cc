-- exit: 1
-- stderr: unsupported option 'rows-per-secnd' for connector 'datagen' in table `t` (did you mean 'rows-per-second'?)
CREATE TABLE t (id INT) WITH ('connector' = 'datagen', 'rows-per-secnd' = '5');

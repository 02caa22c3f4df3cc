-- exit: 1
-- stderr: unknown connector 'datagn' in table `t` (did you mean 'datagen'?)
-- stderr: error_unknown_connector_suggests.sql:4:1:
CREATE TABLE t (id INT) WITH ('connector' = 'datagn');

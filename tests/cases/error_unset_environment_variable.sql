-- exit: 1
-- stderr: error_unset_environment_variable.sql:3:75: environment variable CDC_SQL_SURELY_UNSET used in option 'number-of-rows' is not set
CREATE TABLE t (id INT) WITH ('connector' = 'datagen', 'number-of-rows' = '${CDC_SQL_SURELY_UNSET}');

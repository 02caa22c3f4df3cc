-- exit: 1
-- stderr: option 'fields.kind_col.kind' = 'sequense' of table `t` is not valid; expected one of random, sequence
CREATE TABLE t (kind_col INT) WITH ('connector' = 'datagen', 'fields.kind_col.kind' = 'sequense');

-- exit: 1
-- stderr: PRIMARY KEY must be declared NOT ENFORCED
CREATE TABLE t (id INT, PRIMARY KEY (id)) WITH ('connector' = 'datagen');

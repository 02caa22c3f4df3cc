-- exit: 1
-- stderr: column `db` of table `t` reads metadata 'database_name', which connector 'datagen' does not offer (it offers: none)
CREATE TABLE t (id INT, db STRING METADATA FROM 'database_name' VIRTUAL) WITH ('connector' = 'datagen');

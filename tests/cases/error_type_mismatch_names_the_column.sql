-- exit: 1
-- stderr: cannot write the query's column 2 (`name`, STRING) into column `amount` of sink `out`, which is INT; add CAST(… AS INT)
-- stderr: error_type_mismatch_names_the_column.sql:6:1:
CREATE TABLE src (id INT, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE out (id INT, amount INT) WITH ('connector' = 'print');
INSERT INTO out SELECT id, name FROM src;

-- exit: 1
-- stderr: error_syntax_points_at_line_and_column.sql:9:14: unexpected numbers after the end of the statement
CREATE TABLE numbers (n INT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE out (n INT) WITH ('connector' = 'print');

-- A job file with a typo further down runs nothing at all.
INSERT INTO out SELECT n FROM numbers;

SELECT n FRM numbers;

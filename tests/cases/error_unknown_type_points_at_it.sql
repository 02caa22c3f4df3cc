-- exit: 1
-- stderr: error_unknown_type_points_at_it.sql:6:10: unknown data type STRNG
CREATE TABLE t (
    id   INT,
    -- the typo:
    name STRNG
) WITH ('connector' = 'datagen');

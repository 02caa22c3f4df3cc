-- exit: 1
-- stderr: computing column `small`
-- stderr: Can't cast value 3000000001 to type Int32
CREATE TABLE numbers (n BIGINT) WITH (
    'connector' = 'datagen', 'fields.n.kind' = 'sequence', 'fields.n.start' = '3000000000', 'fields.n.end' = '3000000002'
);
CREATE TABLE out (small INT) WITH ('connector' = 'print');
INSERT INTO out SELECT n FROM numbers WHERE n > 3000000000;

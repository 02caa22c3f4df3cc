-- ${NAME} in option values comes from the environment.
-- env: ROWS=3
-- env: LABEL=env
CREATE TABLE numbers (n INT) WITH (
    'connector' = 'datagen', 'number-of-rows' = '${ROWS}',
    'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '100'
);
CREATE TABLE out (n INT) WITH ('connector' = 'print', 'print-identifier' = '${LABEL}-out');
INSERT INTO out SELECT n FROM numbers;

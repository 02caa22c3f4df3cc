-- 'standard-error' = 'true' prints to stderr; stdout stays empty.
-- stderr: err> +I[1]
CREATE TABLE numbers (n INT) WITH (
    'connector' = 'datagen', 'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '1'
);
CREATE TABLE out (n INT) WITH ('connector' = 'print', 'print-identifier' = 'err', 'standard-error' = 'true');
INSERT INTO out SELECT n FROM numbers;

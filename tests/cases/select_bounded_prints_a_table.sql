-- A SELECT over a bounded source prints a table; over a changelog it shows the row kinds.
CREATE TABLE numbers (n INT, label STRING) WITH (
    'connector' = 'datagen', 'seed' = '1', 'fields.label.length' = '2',
    'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '4'
);
CREATE TABLE changes (id BIGINT, v INT, PRIMARY KEY (id) NOT ENFORCED) WITH (
    'connector' = 'datagen', 'changelog-mode' = 'all', 'changelog.key-space' = '2',
    'number-of-rows' = '4', 'seed' = '2', 'fields.v.min' = '0', 'fields.v.max' = '9'
);
SELECT n * 2 AS doubled, label FROM numbers WHERE n > 1;
SELECT * FROM changes;
SELECT 'no table' AS what, 6 * 7 AS answer;

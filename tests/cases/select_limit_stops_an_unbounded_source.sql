-- An unbounded source streams rows with their kinds until the LIMIT is reached.
CREATE TABLE changes (id BIGINT, v INT, PRIMARY KEY (id) NOT ENFORCED) WITH (
    'connector' = 'datagen', 'changelog-mode' = 'all', 'changelog.key-space' = '2',
    'rows-per-second' = '1000', 'seed' = '9', 'fields.v.min' = '0', 'fields.v.max' = '9'
);
SELECT id, v FROM changes LIMIT 6;

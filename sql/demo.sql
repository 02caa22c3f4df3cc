-- A changelog from datagen, filtered and reshaped, printed in Flink's format.
SET 'pipeline.name' = 'demo';

CREATE TABLE users (
    user_id BIGINT,
    email   STRING,
    plan    STRING,
    score   INT,
    PRIMARY KEY (user_id) NOT ENFORCED
) WITH (
    'connector' = 'datagen',
    'changelog-mode' = 'all',
    'changelog.key-space' = '5',
    'number-of-rows' = '12',
    'rows-per-second' = '100',
    'seed' = '7',
    'fields.email.length' = '6',
    'fields.plan.length' = '1',
    'fields.score.min' = '0',
    'fields.score.max' = '100'
);

CREATE TABLE out (
    user_id BIGINT,
    email   STRING,
    tier    STRING,
    PRIMARY KEY (user_id) NOT ENFORCED
) WITH ('connector' = 'print', 'print-identifier' = 'demo');

INSERT INTO out
SELECT user_id, mask_email(lower(email) || '@example.com'),
       CASE WHEN score >= 50 THEN 'gold' ELSE 'basic' END
FROM users
WHERE score > 20;

-- CAST, CASE and NULL handling per row; NULL in a WHERE counts as false.
CREATE TABLE src (
    id    INT,
    v     INT,
    name  STRING,
    price DECIMAL(10, 2)
) WITH (
    'connector' = 'datagen', 'number-of-rows' = '8', 'seed' = '3',
    'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '8',
    'fields.v.min' = '-5', 'fields.v.max' = '5', 'fields.v.null-rate' = '0.3',
    'fields.name.length' = '3', 'fields.name.null-rate' = '0.3',
    'fields.price.min' = '0', 'fields.price.max' = '20'
);
CREATE TABLE out (id INT, v_text STRING, sign STRING, name STRING, whole INT, cents BIGINT)
WITH ('connector' = 'print');

INSERT INTO out
SELECT id,
       CAST(v AS STRING),
       CASE WHEN v IS NULL THEN 'none' WHEN v > 0 THEN 'pos' WHEN v < 0 THEN 'neg' ELSE 'zero' END,
       COALESCE(name, '?'),
       CAST(price AS INT),
       CAST(price * 100 AS BIGINT)
FROM src
WHERE v IS NULL OR v <> 0;

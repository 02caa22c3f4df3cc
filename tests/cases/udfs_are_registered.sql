-- The UDFs shipped in udfs/ are available in every job.
CREATE TABLE ids (id INT) WITH (
    'connector' = 'datagen', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '2'
);
CREATE TABLE out (id INT, email STRING, card STRING, city STRING, has_zip BOOLEAN) WITH ('connector' = 'print');
INSERT INTO out
SELECT id,
       mask_email('user' || CAST(id AS STRING) || '@example.com'),
       mask('4111111111111111', 0, 4),
       JSON_VALUE('{"address": {"city": "Lyon", "zip": null}}', '$.address.city'),
       json_exists('{"address": {"city": "Lyon", "zip": null}}', '$.address.zip')
FROM ids;

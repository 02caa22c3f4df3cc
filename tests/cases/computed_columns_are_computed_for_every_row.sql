-- Computed columns (Flink's `name AS expression`) take their declared places, are computed from
-- the row's other columns, show in DESCRIBE, and are never written to the source's sink side.
CREATE TABLE src (
    id      INT,
    price   DECIMAL(10, 2),
    qty     INT,
    total   AS price * qty COMMENT 'price times quantity',
    label   AS CONCAT('item-', CAST(id AS STRING)),
    proc    AS PROCTIME()
) WITH (
    'connector' = 'datagen', 'number-of-rows' = '4', 'seed' = '5',
    'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '4',
    'fields.price.min' = '1', 'fields.price.max' = '9',
    'fields.qty.min' = '1', 'fields.qty.max' = '3'
);
DESCRIBE src;
CREATE TABLE out (id INT, total DECIMAL(21, 2), label STRING, recent BOOLEAN) WITH ('connector' = 'print');
INSERT INTO out SELECT id, total, label, proc > TIMESTAMP '2026-01-01 00:00:00' FROM src;

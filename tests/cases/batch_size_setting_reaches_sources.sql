-- 'datafusion.execution.batch_size' caps the rows per batch a source emits; a LIMIT that falls
-- inside a batch still stops at exactly its count.
SET 'datafusion.execution.batch_size' = '2';
CREATE TABLE numbers (n INT) WITH (
    'connector' = 'datagen', 'rows-per-second' = '1000000',
    'fields.n.kind' = 'sequence', 'fields.n.start' = '10', 'fields.n.end' = '99'
);
SELECT n, n + 1 AS next FROM numbers LIMIT 5;

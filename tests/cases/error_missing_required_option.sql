-- exit: 1
-- stderr: a sequence needs both 'fields.id.start' and 'fields.id.end' (column `id`)
CREATE TABLE t (id INT) WITH ('connector' = 'datagen', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1');

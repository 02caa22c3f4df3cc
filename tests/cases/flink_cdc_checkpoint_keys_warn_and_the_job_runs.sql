-- The checkpoint settings Flink CDC job files carry are named in a warning each, with the reason
-- where cdc-sql knows it, and the job runs.
-- stderr: [WARNING] 'execution.checkpointing.checkpoints-after-tasks-finish.enabled' has no effect in cdc-sql: a pipeline whose bounded source is done takes its final checkpoint as it ends
-- stderr: [WARNING] 'execution.checkpointing.externalized-checkpoint-retention' has no effect in cdc-sql: checkpoint records stay in the state directory after the job stops or fails
-- stderr: [WARNING] 'execution.checkpointing.max-concurrent-checkpoints' has no effect in cdc-sql: a pipeline takes its checkpoints one at a time
-- stderr: [WARNING] 'execution.checkpointing.tolerable-failed-checkpoints' has no meaning in cdc-sql, ignored
-- stderr: [WARNING] 'execution.checkpointing.min-pause' has no meaning in cdc-sql, ignored
-- stderr: [WARNING] 'table.exec.source.idle-timeout' has no meaning in cdc-sql, ignored
SET 'execution.checkpointing.checkpoints-after-tasks-finish.enabled' = 'true';
SET 'execution.checkpointing.externalized-checkpoint-retention' = 'RETAIN_ON_CANCELLATION';
SET 'execution.checkpointing.max-concurrent-checkpoints' = '1';
SET 'execution.checkpointing.tolerable-failed-checkpoints' = '3';
SET 'execution.checkpointing.min-pause' = '500ms';
SET 'table.exec.source.idle-timeout' = '10s';
CREATE TABLE numbers (n INT) WITH (
    'connector' = 'datagen', 'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '2'
);
CREATE TABLE out (n INT) WITH ('connector' = 'print', 'print-identifier' = 'out');
INSERT INTO out SELECT n FROM numbers;

-- Flink settings a job file may carry that mean nothing here are named in a warning each, and
-- the job still runs; `SET;` lists them, an ignored credential masked.
-- stderr: [WARNING] 'table.exec.sink.not-null-enforcer' has no effect in cdc-sql: a NULL reaching a NOT NULL sink column always stops the job
-- stderr: [WARNING] 'execution.runtime-mode' has no effect in cdc-sql: every job runs in streaming mode
-- stderr: [WARNING] 'pipeline.operator-chaining' has no meaning in cdc-sql, ignored
-- stderr: [WARNING] 'state.backend' has no meaning in cdc-sql, ignored
-- stderr: [WARNING] 'execution.checkpointing.timeout' has no meaning in cdc-sql, ignored
-- stderr: [WARNING] 'taskmanager.memory.process.size' has no meaning in cdc-sql, ignored
-- stderr: [WARNING] 'taskmanager.numberOfTaskSlots' has no meaning in cdc-sql, ignored
-- stderr: [WARNING] 'pipeline.jars' has no meaning in cdc-sql, ignored
-- stderr: [WARNING] 's3.secret-key' has no meaning in cdc-sql, ignored
SET 'table.exec.sink.not-null-enforcer' = 'ERROR';
SET 'execution.runtime-mode' = 'streaming';
SET 'pipeline.operator-chaining' = 'false';
SET 'state.backend' = 'rocksdb';
SET 'execution.checkpointing.timeout' = '10 min';
SET 'taskmanager.memory.process.size' = '4g';
SET 'taskmanager.numberOfTaskSlots' = '2';
SET 'pipeline.jars' = 'file:///opt/flink/lib/flink-sql-connector-mysql-cdc.jar';
SET 's3.secret-key' = 'do-not-show-me';
SET;
CREATE TABLE numbers (n INT) WITH (
    'connector' = 'datagen', 'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '2'
);
CREATE TABLE out (n INT) WITH ('connector' = 'print', 'print-identifier' = 'out');
INSERT INTO out SELECT n FROM numbers;

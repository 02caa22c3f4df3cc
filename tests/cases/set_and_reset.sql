-- SET shows and changes configuration; Flink keys without effect warn; RESET restores.
-- stderr: [WARNING] 'parallelism.default' has no effect in cdc-sql
SET 'pipeline.name' = 'settings test';
SET 'execution.checkpointing.interval' = '5 s';
SET 'parallelism.default' = '4';
SET 'datafusion.execution.batch_size' = '2';
SET;
RESET 'parallelism.default';
RESET 'datafusion.execution.batch_size';
SET;
RESET;
SET;

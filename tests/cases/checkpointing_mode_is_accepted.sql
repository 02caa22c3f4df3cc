-- 'execution.checkpointing.mode' takes Flink's two values, in any case; AT_LEAST_ONCE warns that
-- it weakens nothing here (checkpoints are always aligned), EXACTLY_ONCE is what happens anyway.
-- stderr: [WARNING] 'execution.checkpointing.mode' = 'at_least_once' has no effect in cdc-sql: checkpoints are always aligned (exactly-once); what a restart delivers again depends on the sink
SET 'execution.checkpointing.mode' = 'EXACTLY_ONCE';
SET;
SET 'execution.checkpointing.mode' = 'at_least_once';
SET;

-- exit: 1
-- stderr: 'execution.checkpointing.dir' is not read by cdc-sql, which takes this setting from 'state.checkpoints.dir' (Flink's other name for it); write SET 'state.checkpoints.dir' = 'file:///tmp/chk'
SET 'execution.checkpointing.dir' = 'file:///tmp/chk';

-- exit: 1
-- stderr: unknown configuration key 'execution.checkpointing.intreval'; did you mean 'execution.checkpointing.interval'?
SET 'execution.checkpointing.intreval' = '5s';

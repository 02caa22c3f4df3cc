-- exit: 1
-- stderr: 'execution.checkpointing.mode' = 'EXACTLY_ONE' is not valid; expected 'EXACTLY_ONCE' or 'AT_LEAST_ONCE'
SET 'execution.checkpointing.mode' = 'EXACTLY_ONE';

-- exit: 1
-- stderr: 'execution.runtime-mode' = 'batch' is not supported: cdc-sql runs every job in streaming mode
SET 'execution.runtime-mode' = 'batch';

-- exit: 1
-- stderr: unknown configuration key 'pipeline.nmae'; did you mean 'pipeline.name'?
SET 'pipeline.nmae' = 'orders';

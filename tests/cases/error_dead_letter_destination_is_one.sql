-- exit: 1
-- stderr: 'dead-letter.path' and 'dead-letter.table' are both set; a job has one dead-letter destination
SET 'dead-letter.table' = 'dlq';
SET 'dead-letter.path' = 'dead.jsonl';

-- exit: 1
-- stderr: 'dead-letter.path' = '/no-such-directory-for-cdc-sql/dead.jsonl' is in `/no-such-directory-for-cdc-sql`, which is not a directory; create it first
SET 'dead-letter.path' = '/no-such-directory-for-cdc-sql/dead.jsonl';

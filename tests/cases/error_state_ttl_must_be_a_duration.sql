-- exit: 1
-- stderr: 'table.exec.state.ttl' = 'forever' is not a valid duration; write e.g. '1 h', '36 h' or '0' (no expiry)
SET 'table.exec.state.ttl' = 'forever';

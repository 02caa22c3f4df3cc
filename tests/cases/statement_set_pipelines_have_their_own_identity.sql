-- unordered
-- env: RUST_LOG=info
-- stderr: pipeline=INSERT INTO out rows_read=3
-- stderr: pipeline=INSERT INTO out (2) rows_read=3
-- Two INSERTs into the same sink are two pipelines with identities of their own (an exactly-once
-- sink stores each one's source position under it, a checkpoint record each one's state).
CREATE TABLE numbers (n BIGINT) WITH (
    'connector' = 'datagen', 'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '3'
);
CREATE TABLE out (n BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'out');

EXECUTE STATEMENT SET BEGIN
  INSERT INTO out SELECT n FROM numbers;
  INSERT INTO out SELECT n * 10 FROM numbers;
END;

-- unordered
-- SELECT DISTINCT and UNION (without ALL) keep each row once; over inserts only their result is
-- inserts only.
CREATE TABLE a (n BIGINT) WITH (
    'connector' = 'datagen', 'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '6'
);
CREATE TABLE b (n BIGINT) WITH (
    'connector' = 'datagen', 'fields.n.kind' = 'sequence', 'fields.n.start' = '4', 'fields.n.end' = '8'
);
CREATE TABLE parity (p BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'parity');
CREATE TABLE merged (n BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'union');

EXECUTE STATEMENT SET BEGIN
  INSERT INTO parity SELECT DISTINCT n % 2 FROM a;
  INSERT INTO merged SELECT n FROM a UNION SELECT n FROM b;
END;

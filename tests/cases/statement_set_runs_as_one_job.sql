-- Several INSERTs run together as one job (both syntaxes).
CREATE TABLE numbers (n BIGINT) WITH (
    'connector' = 'datagen', 'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '6'
);
CREATE TABLE evens (n BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'even');
CREATE TABLE odds (n BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'odd');
CREATE TABLE squares (n BIGINT, sq BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'square');

EXECUTE STATEMENT SET BEGIN
  INSERT INTO evens SELECT n FROM numbers WHERE n % 2 = 0;
  INSERT INTO odds SELECT n FROM numbers WHERE n % 2 = 1;
END;

BEGIN STATEMENT SET;
INSERT INTO squares SELECT n, n * n FROM numbers WHERE n <= 3;
END;

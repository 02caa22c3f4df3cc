-- A LIMIT over a UNION ALL counts the rows of all branches; a LIMIT inside one branch only that
-- branch's. The job ends once no branch can give more.
CREATE TABLE numbers (n BIGINT) WITH (
    'connector' = 'datagen', 'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '100'
);
CREATE TABLE out (kind STRING, n BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'out');

INSERT INTO out
SELECT * FROM (SELECT 'first', n FROM numbers LIMIT 2)
UNION ALL
SELECT 'second', n FROM numbers WHERE n > 97;

-- A filter over update pairs (DESIGN.md §3): old passes / new fails → -D old;
-- old fails / new passes → +I new; both pass → the pair; neither → nothing.
-- `all>` shows the source changelog, `hot>` the filtered one.
CREATE TABLE src (
    id BIGINT,
    v  INT,
    PRIMARY KEY (id) NOT ENFORCED
) WITH (
    'connector' = 'datagen', 'changelog-mode' = 'all', 'changelog.key-space' = '3',
    'number-of-rows' = '14', 'rows-per-second' = '1000000', 'seed' = '11',
    'fields.v.min' = '0', 'fields.v.max' = '99'
);
CREATE TABLE all_changes (id BIGINT, v INT) WITH ('connector' = 'print', 'print-identifier' = 'all');
CREATE TABLE hot (id BIGINT, v INT) WITH ('connector' = 'print', 'print-identifier' = 'hot');

EXECUTE STATEMENT SET BEGIN
  INSERT INTO all_changes SELECT id, v FROM src;
  INSERT INTO hot SELECT id, v FROM src WHERE v >= 50;
END;

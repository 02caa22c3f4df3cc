-- An upsert changelog (+U without -U): a +U that leaves the filter deletes its key.
CREATE TABLE src (id BIGINT, v INT, PRIMARY KEY (id) NOT ENFORCED) WITH (
    'connector' = 'datagen', 'changelog-mode' = 'upsert', 'changelog.key-space' = '2',
    'number-of-rows' = '8', 'seed' = '4', 'fields.v.min' = '0', 'fields.v.max' = '9'
);
CREATE TABLE all_changes (id BIGINT, v INT) WITH ('connector' = 'print', 'print-identifier' = 'all');
CREATE TABLE big (id BIGINT, v INT) WITH ('connector' = 'print', 'print-identifier' = 'big');
EXECUTE STATEMENT SET BEGIN
  INSERT INTO all_changes SELECT id, v FROM src;
  INSERT INTO big SELECT id, v FROM src WHERE v >= 5;
END;

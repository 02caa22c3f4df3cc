-- exit: 1
-- stderr: error_regexp_lookahead_unsupported.sql:6:1:
-- stderr: REGEXP_EXTRACT: regular expression 'a(?=b)' uses a look-ahead, which Java supports but cdc-sql's regex engine does not
CREATE TABLE src (id INT, s STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE out (id INT, m STRING) WITH ('connector' = 'print');
INSERT INTO out SELECT id, REGEXP_EXTRACT(s, 'a(?=b)') FROM src;

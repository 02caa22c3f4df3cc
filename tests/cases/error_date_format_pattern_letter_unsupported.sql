-- exit: 1
-- stderr: error_date_format_pattern_letter_unsupported.sql:6:1:
-- stderr: DATE_FORMAT: pattern letter 'w' in 'yyyy-ww' is not supported; supported letters: G y u M L d D E Q a H k K h m s S z Z X x
CREATE TABLE src (id INT, ts TIMESTAMP(3)) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE out (id INT, week STRING) WITH ('connector' = 'print');
INSERT INTO out SELECT id, DATE_FORMAT(ts, 'yyyy-ww') FROM src;

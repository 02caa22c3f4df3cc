-- exit: 1
-- stderr: error_timestampadd_unknown_unit.sql:6:1:
-- stderr: TIMESTAMPADD: unknown time unit 'FORTNIGHT'; expected one of YEAR, QUARTER, MONTH, WEEK, DAY, HOUR, MINUTE, SECOND, MILLISECOND, MICROSECOND, NANOSECOND
CREATE TABLE src (id INT, ts TIMESTAMP(3)) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE out (id INT, later TIMESTAMP(3)) WITH ('connector' = 'print');
INSERT INTO out SELECT id, TIMESTAMPADD(FORTNIGHT, 1, ts) FROM src;

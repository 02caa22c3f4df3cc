-- exit: 1
-- stderr: LISTAGG(DISTINCT …) is not supported over a changelog; deduplicate in a sub-query (SELECT DISTINCT …) first
CREATE TABLE src (id INT, g INT, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '3');
CREATE TABLE agg (g INT, names STRING) WITH ('connector' = 'print');
INSERT INTO agg SELECT g, LISTAGG(DISTINCT name) FROM src GROUP BY g;

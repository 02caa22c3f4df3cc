-- exit: 1
-- stderr: FOR SYSTEM_TIME AS OF o.ts: `ts` is not a processing-time column of the table joined from; declare `ts AS PROCTIME()` in its CREATE TABLE
-- Flink's event-time temporal join (AS OF a time column of the row, against a versioned table) is
-- not built: a lookup join is a processing-time join.
CREATE TABLE orders (id BIGINT, customer BIGINT, ts TIMESTAMP(3)) WITH ('connector' = 'datagen', 'number-of-rows' = '5');
CREATE TABLE customers (id BIGINT, name STRING, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'jdbc', 'url' = 'jdbc:postgresql://127.0.0.1:1/none', 'table-name' = 'customers');
CREATE TABLE out (id BIGINT, name STRING) WITH ('connector' = 'print');
INSERT INTO out SELECT o.id, c.name FROM orders AS o JOIN customers FOR SYSTEM_TIME AS OF o.ts AS c ON o.customer = c.id;

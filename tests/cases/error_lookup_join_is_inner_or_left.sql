-- exit: 1
-- stderr: a lookup join (FOR SYSTEM_TIME AS OF) of `customers` is an INNER JOIN or a LEFT JOIN with the looked-up table on the right, as in Flink
CREATE TABLE orders (id BIGINT, customer BIGINT, proc AS PROCTIME()) WITH ('connector' = 'datagen', 'number-of-rows' = '5');
CREATE TABLE customers (id BIGINT, name STRING, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'jdbc', 'url' = 'jdbc:postgresql://127.0.0.1:1/none', 'table-name' = 'customers');
CREATE TABLE out (id BIGINT, name STRING) WITH ('connector' = 'print');
INSERT INTO out SELECT o.id, c.name FROM orders AS o FULL JOIN customers FOR SYSTEM_TIME AS OF o.proc AS c ON o.customer = c.id;

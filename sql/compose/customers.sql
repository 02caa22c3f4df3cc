-- One job per table: MySQL shop.customers → PostgreSQL sink, e-mails masked on the way.
SET 'pipeline.name' = 'customers';
SET 'execution.checkpointing.interval' = '5s';

CREATE TABLE mysql_customers (
    customer_id BIGINT,
    name        STRING,
    email       STRING,
    country     STRING,
    PRIMARY KEY (customer_id) NOT ENFORCED
) WITH (
    'connector' = 'mysql-cdc',
    'hostname' = '${MYSQL_HOST}',
    'port' = '3306',
    'username' = '${MYSQL_USER}',
    'password' = '${MYSQL_PASSWORD}',
    'database-name' = 'shop',
    'table-name' = 'customers',
    'server-id' = '5402',
    'scan.startup.mode' = 'initial'
);

CREATE TABLE sink_customers (
    customer_id BIGINT,
    name        STRING,
    email       STRING,
    country     STRING,
    PRIMARY KEY (customer_id) NOT ENFORCED
) WITH (
    'connector' = 'jdbc',
    'url' = 'jdbc:postgresql://${SINK_HOST}:5432/warehouse',
    'table-name' = 'customers',
    'username' = '${SINK_USER}',
    'password' = '${SINK_PASSWORD}'
);

INSERT INTO sink_customers SELECT customer_id, name, mask_email(email), country FROM mysql_customers;

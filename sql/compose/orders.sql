-- One job per table: MySQL shop.orders → PostgreSQL sink (run by the `cdc-orders` compose service).
SET 'pipeline.name' = 'orders';
SET 'execution.checkpointing.interval' = '5s';

CREATE TABLE mysql_orders (
    order_id    BIGINT,
    customer_id BIGINT,
    amount      DECIMAL(12, 2),
    status      STRING,
    created_at  TIMESTAMP(3),
    PRIMARY KEY (order_id) NOT ENFORCED
) WITH (
    'connector' = 'mysql-cdc',
    'hostname' = '${MYSQL_HOST}',
    'port' = '3306',
    'username' = '${MYSQL_USER}',
    'password' = '${MYSQL_PASSWORD}',
    'database-name' = 'shop',
    'table-name' = 'orders',
    'server-id' = '5401',
    'scan.startup.mode' = 'initial'
);

CREATE TABLE sink_orders (
    order_id    BIGINT,
    customer_id BIGINT,
    amount      DECIMAL(12, 2),
    status      STRING,
    created_at  TIMESTAMP(3),
    PRIMARY KEY (order_id) NOT ENFORCED
) WITH (
    'connector' = 'jdbc',
    'url' = 'jdbc:postgresql://${SINK_HOST}:5432/warehouse',
    'table-name' = 'orders',
    'username' = '${SINK_USER}',
    'password' = '${SINK_PASSWORD}'
);

INSERT INTO sink_orders SELECT order_id, customer_id, amount, status, created_at FROM mysql_orders;

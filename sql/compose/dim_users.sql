-- One job per table: PostgreSQL public.dim_users (logical replication, pgoutput) → PostgreSQL sink.
SET 'pipeline.name' = 'dim_users';
SET 'execution.checkpointing.interval' = '5s';

CREATE TABLE pg_dim_users (
    user_id INT,
    email   STRING,
    plan    STRING,
    PRIMARY KEY (user_id) NOT ENFORCED
) WITH (
    'connector' = 'postgres-cdc',
    'hostname' = '${POSTGRES_HOST}',
    'port' = '5432',
    'username' = '${POSTGRES_USER}',
    'password' = '${POSTGRES_PASSWORD}',
    'database-name' = 'user_analytics',
    'schema-name' = 'public',
    'table-name' = 'dim_users',
    'slot.name' = 'cdc_dim_users',
    'decoding.plugin.name' = 'pgoutput'
);

CREATE TABLE sink_dim_users (
    user_id INT,
    email   STRING,
    plan    STRING,
    PRIMARY KEY (user_id) NOT ENFORCED
) WITH (
    'connector' = 'jdbc',
    'url' = 'jdbc:postgresql://${SINK_HOST}:5432/warehouse',
    'table-name' = 'dim_users',
    'username' = '${SINK_USER}',
    'password' = '${SINK_PASSWORD}'
);

INSERT INTO sink_dim_users SELECT user_id, lower(email), plan FROM pg_dim_users WHERE plan <> 'test';

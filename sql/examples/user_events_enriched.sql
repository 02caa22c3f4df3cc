-- Debezium-envelope user events on Kafka → enriched from a PostgreSQL `plans` table → a MariaDB
-- (or MySQL) `users` table, exactly once and in order.
--
-- * Enrichment: a lookup join (FOR SYSTEM_TIME AS OF the processing time) into `plans`, with a
--   partial cache; one query per batch for the plans the cache misses. LEFT JOIN: a user whose
--   plan is unknown is still written (plan columns NULL), and a delete keeps its key.
-- * Exactly once: the Kafka offsets are committed in the same MariaDB transaction as the rows
--   ('sink.offsets-table'); a crash or SIGKILL resumes from them.
-- * In order: 'sink.version-column' makes every upsert and delete conditional on the event time,
--   so an older event arriving late never overwrites a newer one, and a delete is not undone by
--   a late older event (it leaves a tombstone in `users__cdc_sql_deleted`).
-- * Failures: a row MariaDB refuses for its values (an email longer than the column, a NULL
--   where NOT NULL) goes to the `dead_letters` table with the error, its Kafka position and the
--   row as JSON, and the job goes on; anything else (MariaDB down) restarts the job.
--
-- Run: set the variables below (e.g. in the environment of `cdc-sql -f`), create the `users`
-- table in MariaDB (or let 'sink.auto-create-table' do it), and the topic's producer sends
-- Debezium JSON without schema ({"before": …, "after": …, "source": {"ts_ms": …}, "op": "c"}).

SET 'execution.checkpointing.interval' = '1s';
SET 'state.checkpoints.dir' = '${CHECKPOINT_DIR}';
SET 'dead-letter.table' = 'dead_letters';

CREATE TABLE user_events (
    id         BIGINT,
    name       STRING,
    email      STRING,
    plan_id    INT,
    event_time TIMESTAMP_LTZ(3) METADATA FROM 'value.source.timestamp' VIRTUAL,
    proc       AS PROCTIME(),
    PRIMARY KEY (id) NOT ENFORCED
) WITH (
    'connector' = 'kafka',
    'topic' = '${USER_EVENTS_TOPIC}',
    'properties.bootstrap.servers' = '${KAFKA_BOOTSTRAP}',
    'properties.group.id' = 'user-events-enriched',
    'scan.startup.mode' = 'earliest-offset',
    'format' = 'debezium-json'
);

CREATE TABLE plans (
    id            INT,
    name          STRING,
    monthly_price DECIMAL(10, 2),
    PRIMARY KEY (id) NOT ENFORCED
) WITH (
    'connector' = 'jdbc',
    'url' = '${PLANS_URL}',
    'table-name' = 'plans',
    'username' = '${PLANS_USER}',
    'password' = '${PLANS_PASSWORD}',
    'lookup.cache' = 'PARTIAL',
    'lookup.partial-cache.max-rows' = '10000',
    'lookup.partial-cache.expire-after-write' = '10 min'
);

CREATE TABLE users (
    id            BIGINT,
    name          STRING,
    email         STRING,
    plan_name     STRING,
    monthly_price DECIMAL(10, 2),
    updated_at    TIMESTAMP_LTZ(3),
    PRIMARY KEY (id) NOT ENFORCED
) WITH (
    'connector' = 'jdbc',
    'url' = '${USERS_URL}',
    'table-name' = 'users',
    'username' = '${USERS_USER}',
    'password' = '${USERS_PASSWORD}',
    'sink.offsets-table' = 'cdc_offsets',
    'sink.version-column' = 'updated_at'
);

CREATE TABLE dead_letters (
    job STRING, pipeline STRING, stage STRING, table_name STRING, error STRING,
    position STRING, row_kind STRING, row_json STRING, created_at TIMESTAMP_LTZ(3)
) WITH (
    'connector' = 'jdbc',
    'url' = '${USERS_URL}',
    'table-name' = 'dead_letters',
    'username' = '${USERS_USER}',
    'password' = '${USERS_PASSWORD}',
    'sink.auto-create-table' = 'true'
);

INSERT INTO users
SELECT e.id, e.name, e.email, p.name, p.monthly_price, e.event_time
FROM user_events AS e
LEFT JOIN plans FOR SYSTEM_TIME AS OF e.proc AS p ON e.plan_id = p.id;

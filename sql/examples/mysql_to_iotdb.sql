-- MySQL → Apache IoTDB: backfill the history, then keep IoTDB in sync, with one mapping.
--
-- Rows of `factory.sensor_readings` become time series: `device_id` picks the device
-- (root.factory.<device_id>, quoted with backticks when the id needs it), `created_at` is the
-- time, every other column a measurement. Run it twice to migrate then follow:
--   1. backfill only:   'scan.startup.mode' = 'snapshot'  (the job ends when the table is copied)
--   2. backfill + CDC:  'scan.startup.mode' = 'initial'   (snapshot, then the binlog, forever)
-- Updates overwrite points, deletes remove them, an update that changes device_id or created_at
-- moves the point (the old one is deleted).
--
-- Needs: MySQL binlog_format=ROW, a user with SELECT, REPLICATION SLAVE, REPLICATION CLIENT;
-- IoTDB's REST service enabled (enable_rest_service=true, rest_service_port=18080).

SET 'execution.checkpointing.interval' = '10s';

CREATE TABLE readings (
    id BIGINT,
    device_id STRING,
    created_at TIMESTAMP(3),
    temperature DECIMAL(6, 2),
    humidity DOUBLE,
    status STRING,
    PRIMARY KEY (id) NOT ENFORCED
) WITH (
    'connector' = 'mysql-cdc',
    'hostname' = '${MYSQL_HOST}',
    'port' = '3306',
    'username' = 'cdc',
    'password' = '${MYSQL_PASSWORD}',
    'database-name' = 'factory',
    'table-name' = 'sensor_readings',
    'server-id' = '5401',
    'scan.startup.mode' = 'initial'
);

CREATE TABLE iotdb_readings (
    device_id STRING,
    created_at TIMESTAMP(3),
    temperature DECIMAL(6, 2),
    humidity DOUBLE,
    status STRING
) WITH (
    'connector' = 'iotdb',
    'url' = 'http://${IOTDB_HOST}:18080',
    'user' = 'root',
    'password' = '${IOTDB_PASSWORD}',
    'device' = 'root.factory.{device_id}',
    'time-column' = 'created_at',
    'time-precision' = 'ms',
    'measurements' = 'temperature:temp',
    'sink.buffer-flush.max-rows' = '10000',
    'sink.buffer-flush.interval' = '1s',
    'sink.max-retries' = '5'
);

INSERT INTO iotdb_readings
SELECT device_id, created_at, temperature, humidity, status FROM readings;

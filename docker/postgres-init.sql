-- Source schema for postgres-cdc; the table needs REPLICA IDENTITY FULL for old row images.
CREATE DATABASE user_analytics;
\c user_analytics
CREATE TABLE dim_users (user_id INT PRIMARY KEY, email TEXT NOT NULL, plan TEXT NOT NULL);
ALTER TABLE dim_users REPLICA IDENTITY FULL;
-- No publication here: the first postgres-cdc job (logged in as the postgres superuser) creates
-- dbz_publication FOR ALL TABLES, Debezium's default, so a job per table needs nothing more.

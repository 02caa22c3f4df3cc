-- Target tables of the jdbc sinks.
CREATE TABLE orders (order_id BIGINT PRIMARY KEY, customer_id BIGINT, amount NUMERIC(12, 2), status TEXT, created_at TIMESTAMP(3));
CREATE TABLE customers (customer_id BIGINT PRIMARY KEY, name TEXT, email TEXT, country TEXT);
CREATE TABLE dim_users (user_id INT PRIMARY KEY, email TEXT, plan TEXT);

-- unordered
-- Shards of one table in two sources merged into one sink; each branch filters and projects on
-- its own, a literal column says where a row came from.
CREATE TABLE orders_eu (id BIGINT, amount BIGINT) WITH (
    'connector' = 'datagen', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '4',
    'fields.amount.kind' = 'sequence', 'fields.amount.start' = '10', 'fields.amount.end' = '13'
);
CREATE TABLE orders_us (order_id INT, total BIGINT) WITH (
    'connector' = 'datagen', 'fields.order_id.kind' = 'sequence', 'fields.order_id.start' = '101',
    'fields.order_id.end' = '105', 'fields.total.kind' = 'sequence', 'fields.total.start' = '1',
    'fields.total.end' = '5'
);
CREATE TABLE all_orders (region STRING, id BIGINT, amount BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'all');

INSERT INTO all_orders
SELECT 'eu', id, amount FROM orders_eu WHERE amount > 10
UNION ALL
SELECT 'us', order_id, total * 100 FROM orders_us;

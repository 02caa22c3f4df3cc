-- Per customer, its region and total, into a sink keyed by region: several customers share a
-- region, and a customer's region changes as its orders change. Flink's upsert materializer (put
-- before the sink under 'table.exec.sink.upsert-materialize' = AUTO, the default) keeps every
-- customer's row per region and shows the latest: a region is deleted only when no customer is
-- left in it, and a customer leaving a region shows the one before it again. The output is an
-- upsert changelog by region (+I, +U, -D).
SET 'datafusion.execution.batch_size' = '4';
CREATE TABLE orders (id BIGINT, customer INT, region INT, amount INT, PRIMARY KEY (id) NOT ENFORCED)
    WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'changelog.key-space' = '5',
          'number-of-rows' = '24', 'rows-per-second' = '1000000', 'seed' = '3',
          'fields.customer.min' = '1', 'fields.customer.max' = '3',
          'fields.region.min' = '1', 'fields.region.max' = '2',
          'fields.amount.min' = '1', 'fields.amount.max' = '9');
CREATE TABLE per_region (customer INT, region INT, total BIGINT, PRIMARY KEY (region) NOT ENFORCED)
    WITH ('connector' = 'print');
INSERT INTO per_region SELECT customer, MAX(region), SUM(amount) FROM orders GROUP BY customer;

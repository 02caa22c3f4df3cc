-- exit: 1
-- stderr: table `orders`: a partitioned scan needs all four of 'scan.partition.column', 'scan.partition.num', 'scan.partition.lower-bound' and 'scan.partition.upper-bound'
CREATE TABLE orders (id BIGINT) WITH ('connector' = 'jdbc', 'url' = 'jdbc:postgresql://db:5432/shop',
  'table-name' = 'orders', 'scan.partition.column' = 'id', 'scan.partition.num' = '4');

-- exit: 1
-- stderr: error_table_names_are_case_sensitive_as_in_flink.sql:7:1:
-- stderr: table `orders` does not exist (tables: Orders, Out_T). Identifiers are case-sensitive, as in Flink: write `Orders`
CREATE TABLE Orders (OrderId INT, Amount INT) WITH (
  'connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE Out_T (OrderId INT, Amount INT) WITH ('connector' = 'print');
INSERT INTO Out_T SELECT OrderId, Amount FROM orders;

-- exit: 1
-- stderr: error_identifiers_are_case_sensitive_as_in_flink.sql:8:1:
-- stderr: column `orderid` not found. Identifiers are case-sensitive, as in Flink: write `OrderId`
CREATE TABLE Orders (OrderId INT, Amount INT) WITH (
  'connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE Out_T (OrderId INT, Amount INT) WITH ('connector' = 'print');
-- Flink fails here too ("Column 'orderid' not found in any table; did you mean 'OrderId'?").
INSERT INTO Out_T SELECT orderid, Amount FROM Orders;

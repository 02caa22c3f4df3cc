-- Flink keeps identifiers as declared and matches them exactly: mixed-case table and column names
-- work when written as declared, with or without backticks.
CREATE TABLE Orders (OrderId INT, `Amount` INT, customer_Name STRING) WITH (
  'connector' = 'datagen', 'fields.OrderId.kind' = 'sequence', 'fields.OrderId.start' = '1',
  'fields.OrderId.end' = '2', 'fields.Amount.min' = '5', 'fields.Amount.max' = '5',
  'fields.customer_Name.length' = '3');
CREATE TABLE Out_T (OrderId INT, Amount INT) WITH ('connector' = 'print', 'print-identifier' = 'out');
INSERT INTO Out_T SELECT `OrderId`, Amount FROM `Orders` WHERE Amount > 1;

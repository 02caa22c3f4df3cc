-- exit: 1
-- stderr: error_unterminated_statement.sql:4:1: statement is not terminated: add ';' at its end
SHOW TABLES;
SHOW TABLES

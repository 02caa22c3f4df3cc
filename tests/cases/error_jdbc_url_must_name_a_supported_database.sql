-- exit: 1
-- stderr: option 'url' = 'jdbc:oracle:thin:@db:1521/x' of table `legacy` is not valid; expected a URL starting with jdbc:postgresql://, jdbc:mysql:// or jdbc:mariadb://
CREATE TABLE legacy (id BIGINT) WITH ('connector' = 'jdbc', 'url' = 'jdbc:oracle:thin:@db:1521/x', 'table-name' = 't');

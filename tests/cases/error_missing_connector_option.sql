-- exit: 1
-- stderr: table `t` has no 'connector' option; add 'connector' = '…' to its WITH clause
CREATE TABLE t (id INT) WITH ('number-of-rows' = '1');

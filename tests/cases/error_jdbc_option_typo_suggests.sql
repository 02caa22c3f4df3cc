-- exit: 1
-- stderr: unsupported option 'sink.buffer-flush.max-row' for connector 'jdbc' in table `typo` (did you mean 'sink.buffer-flush.max-rows'?)
CREATE TABLE typo (id BIGINT) WITH ('connector' = 'jdbc', 'url' = 'jdbc:mysql://db/shop', 'table-name' = 't',
  'sink.buffer-flush.max-row' = '10');

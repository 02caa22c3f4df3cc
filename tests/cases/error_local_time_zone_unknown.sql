-- exit: 1
-- stderr: error_local_time_zone_unknown.sql:4:1:
-- stderr: 'table.local-time-zone': unknown time zone 'Asia/Shangai'; use a region name like 'Asia/Shanghai', 'UTC', or an offset like '+08:00' / 'GMT+8'
SET 'table.local-time-zone' = 'Asia/Shangai';

-- Flink's string functions, each with the example of Flink's "System (Built-in) Functions" page
-- (docs/data/sql_functions.yml) where it gives one; `<NULL>` marks a NULL result.
CREATE TABLE one (id INT) WITH (
    'connector' = 'datagen', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '1'
);
SELECT 'a || b' AS example, 'a' || 'b' AS result FROM one
UNION ALL SELECT 'CHAR_LENGTH(''héllo'')', CAST(CHAR_LENGTH('héllo') AS STRING) FROM one
UNION ALL SELECT 'CHARACTER_LENGTH(''abc'')', CAST(CHARACTER_LENGTH('abc') AS STRING) FROM one
UNION ALL SELECT 'UPPER / LOWER', UPPER('aB') || LOWER('aB') FROM one
UNION ALL SELECT 'POSITION(''b'' IN ''abc'')', CAST(POSITION('b' IN 'abc') AS STRING) FROM one
UNION ALL SELECT 'POSITION(''z'' IN ''abc'')', CAST(POSITION('z' IN 'abc') AS STRING) FROM one
UNION ALL SELECT 'TRIM(BOTH ''x'' FROM ''xxaxx'')', TRIM(BOTH 'x' FROM 'xxaxx') FROM one
UNION ALL SELECT 'LTRIM('' This is a test String.'')', LTRIM(' This is a test String.') FROM one
UNION ALL SELECT 'RTRIM(''This is a test String. '')', RTRIM('This is a test String. ') FROM one
UNION ALL SELECT 'BTRIM(''xxaxx'', ''x'')', BTRIM('xxaxx', 'x') FROM one
UNION ALL SELECT 'REPEAT(''This is a test String.'', 2)', REPEAT('This is a test String.', 2) FROM one
UNION ALL SELECT 'REGEXP_REPLACE(''foobar'', ''oo|ar'', '''')', REGEXP_REPLACE('foobar', 'oo|ar', '') FROM one
-- Flink quotes the replacement: $0 is text, not a group.
UNION ALL SELECT 'REGEXP_REPLACE(''abc'', ''b'', ''$0'')', REGEXP_REPLACE('abc', 'b', '$0') FROM one
UNION ALL SELECT 'OVERLAY(''xxxxxtest'' PLACING ''xxxx'' FROM 6)', OVERLAY('xxxxxtest' PLACING 'xxxx' FROM 6) FROM one
UNION ALL SELECT 'OVERLAY(''xxxxxtest'' PLACING ''xxxx'' FROM 6 FOR 2)', OVERLAY('xxxxxtest' PLACING 'xxxx' FROM 6 FOR 2) FROM one
UNION ALL SELECT 'STARTSWITH(''abc'', ''ab'')', CAST(STARTSWITH('abc', 'ab') AS STRING) FROM one
UNION ALL SELECT 'ENDSWITH(''abc'', '''')', CAST(ENDSWITH('abc', '') AS STRING) FROM one
UNION ALL SELECT 'SUBSTRING(''hello'' FROM 2 FOR 2)', SUBSTRING('hello' FROM 2 FOR 2) FROM one
UNION ALL SELECT 'SUBSTRING(''hello'', 0, 2)', SUBSTRING('hello', 0, 2) FROM one
UNION ALL SELECT 'SUBSTR(''hello'', -3, 2)', SUBSTR('hello', -3, 2) FROM one
UNION ALL SELECT 'SUBSTR(''hello'', 2, -1)', COALESCE(SUBSTR('hello', 2, -1), '<NULL>') FROM one
UNION ALL SELECT 'REPLACE(''hello world'', ''world'', ''flink'')', REPLACE('hello world', 'world', 'flink') FROM one
UNION ALL SELECT 'REPLACE(''ababab'', ''abab'', ''z'')', REPLACE('ababab', 'abab', 'z') FROM one
UNION ALL SELECT 'REGEXP_COUNT(''abcab'', ''ab'')', CAST(REGEXP_COUNT('abcab', 'ab') AS STRING) FROM one
UNION ALL SELECT 'REGEXP_EXTRACT(''foothebar'', ''foo(.*?)(bar)'', 2)', REGEXP_EXTRACT('foothebar', 'foo(.*?)(bar)', 2) FROM one
UNION ALL SELECT 'REGEXP_EXTRACT(''foothebar'', ''foo(.*?)(bar)'', 3)', COALESCE(REGEXP_EXTRACT('foothebar', 'foo(.*?)(bar)', 3), '<NULL>') FROM one
UNION ALL SELECT 'REGEXP_EXTRACT_ALL(''a1b22'', ''[a-z](\d+)'')', CAST(REGEXP_EXTRACT_ALL('a1b22', '[a-z](\d+)') AS STRING) FROM one
UNION ALL SELECT 'REGEXP_INSTR(''abcab'', ''ca'')', CAST(REGEXP_INSTR('abcab', 'ca') AS STRING) FROM one
UNION ALL SELECT 'REGEXP_SUBSTR(''abc123'', ''\d+'')', REGEXP_SUBSTR('abc123', '\d+') FROM one
-- Java's \d is ASCII only: the Arabic-Indic digit is not matched.
UNION ALL SELECT 'REGEXP(''٣'', ''\d'')', CAST(REGEXP('٣', '\d') AS STRING) FROM one
UNION ALL SELECT 'TRANSLATE(''hello'', ''el'', ''i'')', TRANSLATE('hello', 'el', 'i') FROM one
UNION ALL SELECT 'INITCAP(''hello wORLD-abc'')', INITCAP('hello wORLD-abc') FROM one
UNION ALL SELECT 'CONCAT(''AA'', ''BB'', ''CC'')', CONCAT('AA', 'BB', 'CC') FROM one
UNION ALL SELECT 'CONCAT(''AA'', NULL)', COALESCE(CONCAT('AA', CAST(NULL AS STRING)), '<NULL>') FROM one
UNION ALL SELECT 'CONCAT_WS(''~'', ''AA'', NULL, ''BB'', '''', ''CC'')', CONCAT_WS('~', 'AA', CAST(NULL AS STRING), 'BB', '', 'CC') FROM one
UNION ALL SELECT 'LPAD(''hi'', 4, ''??'')', LPAD('hi', 4, '??') FROM one
UNION ALL SELECT 'LPAD(''hi'', 1, ''??'')', LPAD('hi', 1, '??') FROM one
UNION ALL SELECT 'RPAD(''hi'', 4, ''??'')', RPAD('hi', 4, '??') FROM one
UNION ALL SELECT 'RPAD(''hi'', 1, ''??'')', RPAD('hi', 1, '??') FROM one
UNION ALL SELECT 'LPAD(''hi'', 4, '''')', COALESCE(LPAD('hi', 4, ''), '<NULL>') FROM one
UNION ALL SELECT 'FROM_BASE64(''aGVsbG8gd29ybGQ='')', FROM_BASE64('aGVsbG8gd29ybGQ=') FROM one
UNION ALL SELECT 'TO_BASE64(''hello world'')', TO_BASE64('hello world') FROM one
UNION ALL SELECT 'ASCII(''abc'')', CAST(ASCII('abc') AS STRING) FROM one
UNION ALL SELECT 'ASCII(CAST(NULL AS VARCHAR))', COALESCE(CAST(ASCII(CAST(NULL AS VARCHAR)) AS STRING), '<NULL>') FROM one
UNION ALL SELECT 'CHR(97)', CHR(97) FROM one
UNION ALL SELECT 'CHR(353)', CHR(353) FROM one
UNION ALL SELECT 'DECODE(ENCODE(''héllo'', ''UTF-16''), ''UTF-16'')', DECODE(ENCODE('héllo', 'UTF-16'), 'UTF-16') FROM one
UNION ALL SELECT 'TO_BASE64(ENCODE(''hé'', ''ISO-8859-1''))', TO_BASE64(ENCODE('hé', 'ISO-8859-1')) FROM one
UNION ALL SELECT 'DECODE(ENCODE(''hé'', ''US-ASCII''), ''US-ASCII'')', DECODE(ENCODE('hé', 'US-ASCII'), 'US-ASCII') FROM one
UNION ALL SELECT 'INSTR(''hello'', ''l'')', CAST(INSTR('hello', 'l') AS STRING) FROM one
UNION ALL SELECT 'LEFT(''hello'', 2)', LEFT('hello', 2) FROM one
UNION ALL SELECT 'LEFT(''hello'', -1)', '[' || LEFT('hello', -1) || ']' FROM one
UNION ALL SELECT 'RIGHT(''hello'', 2)', RIGHT('hello', 2) FROM one
UNION ALL SELECT 'LOCATE(''l'', ''hello'')', CAST(LOCATE('l', 'hello') AS STRING) FROM one
UNION ALL SELECT 'LOCATE(''l'', ''hello'', 4)', CAST(LOCATE('l', 'hello', 4) AS STRING) FROM one
UNION ALL SELECT 'LOCATE(''z'', ''hello'')', CAST(LOCATE('z', 'hello') AS STRING) FROM one
UNION ALL SELECT 'URL_ENCODE(''a b&c=d/é'')', URL_ENCODE('a b&c=d/é') FROM one
UNION ALL SELECT 'URL_DECODE(''a+b%26c'')', URL_DECODE('a+b%26c') FROM one
UNION ALL SELECT 'URL_DECODE(''%zz'')', COALESCE(URL_DECODE('%zz'), '<NULL>') FROM one
UNION ALL SELECT 'PARSE_URL(''http://facebook.com/path1/p.php?k1=v1&k2=v2#Ref1'', ''HOST'')', PARSE_URL('http://facebook.com/path1/p.php?k1=v1&k2=v2#Ref1', 'HOST') FROM one
UNION ALL SELECT 'PARSE_URL(''http://facebook.com/path1/p.php?k1=v1&k2=v2#Ref1'', ''QUERY'', ''k1'')', PARSE_URL('http://facebook.com/path1/p.php?k1=v1&k2=v2#Ref1', 'QUERY', 'k1') FROM one
UNION ALL SELECT 'PARSE_URL(…, ''FILE'')', PARSE_URL('http://facebook.com/path1/p.php?k1=v1&k2=v2#Ref1', 'FILE') FROM one
UNION ALL SELECT 'REGEXP(''abc'', ''b'')', CAST(REGEXP('abc', 'b') AS STRING) FROM one
UNION ALL SELECT 'REVERSE(''abc'')', REVERSE('abc') FROM one
UNION ALL SELECT 'SPLIT_INDEX(''a,b,c'', '','', 1)', SPLIT_INDEX('a,b,c', ',', 1) FROM one
UNION ALL SELECT 'SPLIT_INDEX(''a,b,c'', '','', 3)', COALESCE(SPLIT_INDEX('a,b,c', ',', 3), '<NULL>') FROM one
UNION ALL SELECT 'SPLIT_INDEX(''a,b,c'', '','', -1)', COALESCE(SPLIT_INDEX('a,b,c', ',', -1), '<NULL>') FROM one
UNION ALL SELECT 'SPLIT_INDEX(''a;b'', 59, 1)', SPLIT_INDEX('a;b', 59, 1) FROM one
UNION ALL SELECT 'STR_TO_MAP(''k1=v1,k2=v2'')[''k2'']', STR_TO_MAP('k1=v1,k2=v2')['k2'] FROM one
UNION ALL SELECT 'STR_TO_MAP(''k1:v1;k2'', '';'', '':'')', JSON_STRING(STR_TO_MAP('k1:v1;k2', ';', ':')) FROM one
UNION ALL SELECT 'STR_TO_MAP(''a.1|b.2'', ''\|'', ''\.'')', JSON_STRING(STR_TO_MAP('a.1|b.2', '\|', '\.')) FROM one
UNION ALL SELECT 'JSON_QUOTE(''a"b/c'')', JSON_QUOTE('a"b/c') FROM one
UNION ALL SELECT 'JSON_UNQUOTE(''"a\u0041"'')', JSON_UNQUOTE('"a\u0041"') FROM one
UNION ALL SELECT 'JSON_UNQUOTE(''abc'')', JSON_UNQUOTE('abc') FROM one
UNION ALL SELECT 'ELT(2, ''a'', ''b'')', ELT(2, 'a', 'b') FROM one
UNION ALL SELECT 'ELT(3, ''a'', ''b'')', COALESCE(ELT(3, 'a', 'b'), '<NULL>') FROM one
UNION ALL SELECT 'SPLIT(''a,b,,c'', '','')', CAST(SPLIT('a,b,,c', ',') AS STRING) FROM one
UNION ALL SELECT '''abc'' SIMILAR TO ''a_c''', CAST('abc' SIMILAR TO 'a_c' AS STRING) FROM one
UNION ALL SELECT '''abc'' SIMILAR TO ''a.c''', CAST('abc' SIMILAR TO 'a.c' AS STRING) FROM one
UNION ALL SELECT '''abc'' LIKE ''a%''', CAST('abc' LIKE 'a%' AS STRING) FROM one
UNION ALL SELECT 'HASH_CODE(''hello'')', CAST(HASH_CODE('hello') AS STRING) FROM one
-- The same functions on column values, row by row.
UNION ALL SELECT 'TO_BASE64 of a column', TO_BASE64(CAST(id AS STRING) || 'x') FROM one
UNION ALL SELECT 'SPLIT_INDEX of a column', SPLIT_INDEX('a,b,c', ',', id) FROM one
UNION ALL SELECT 'REGEXP_EXTRACT of a column', REGEXP_EXTRACT('k' || CAST(id AS STRING), 'k(\d)', 1) FROM one;

//! Parses the statements of a job file: Flink's DDL (`CREATE TABLE … WITH (…)`, metadata columns,
//! Flink type names), `SET`/`RESET`, `SHOW`/`DESCRIBE`, statement sets, and hands `INSERT` and
//! `SELECT` to sqlparser so DataFusion can plan them. DataFusion does not plan Flink DDL, so the
//! DDL grammar lives here, over sqlparser's tokens (which keep line and column).

use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use super::env::substitute;
use super::split::{line_col, padded, split, RawStatement};
use super::table::{ColumnSpec, ComputedColumn, MetadataColumn, TableOption, TableSpec};
use super::types::{list_of, time_unit_for_precision, UTC};
use crate::error::{Error, Location, Result};

#[derive(Debug, Clone)]
pub enum Statement {
    CreateTable {
        spec: TableSpec,
        if_not_exists: bool,
    },
    DropTable {
        name: String,
        if_exists: bool,
    },
    /// `SET;` lists the settings; `SET 'k' = 'v';` sets one.
    Set {
        entry: Option<(String, String)>,
    },
    /// `RESET;` clears all settings; `RESET 'k';` one.
    Reset {
        key: Option<String>,
    },
    ShowTables,
    Describe {
        name: String,
    },
    ShowCreateTable {
        name: String,
    },
    Insert(Box<ast::Statement>),
    Query(Box<ast::Statement>),
    /// `EXECUTE STATEMENT SET BEGIN … END`: INSERTs that run as one job.
    StatementSet(Vec<LocatedStatement>),
    /// The older `BEGIN STATEMENT SET; …; END;` form, statement by statement.
    BeginStatementSet,
    End,
    Help,
    Quit,
}

#[derive(Debug, Clone)]
pub struct LocatedStatement {
    pub statement: Statement,
    pub location: Location,
}

/// Parses every complete statement of `script`. `source` names the script in error locations.
/// The unterminated tail (text after the last `;`) is an error: a job file must end its
/// statements.
pub fn parse_script(source: &str, script: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<LocatedStatement>> {
    let parts = split(script);
    if let Some(offset) = parts.incomplete {
        let (line, column) = line_col(script, offset);
        return Err(Error::user("statement is not terminated: add ';' at its end").at(Location {
            source: source.to_string(),
            line,
            column,
        }));
    }
    parts.statements.iter().map(|raw| parse_statement(source, script, raw, env)).collect()
}

/// Parses one statement taken from `script` by the splitter.
pub fn parse_statement(
    source: &str,
    script: &str,
    raw: &RawStatement,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LocatedStatement> {
    let (line, column) = line_col(script, raw.offset);
    let location = Location { source: source.to_string(), line, column };
    let text = padded(script, raw);
    let dialect = GenericDialect {};
    let mut tokens = Tokenizer::new(&dialect, &text)
        .tokenize_with_location()
        .map_err(|e| parser_error(source, ParserError::TokenizerError(e.to_string()), &location))?;
    // Flink's JSON_OBJECT(KEY k VALUE v) is not something sqlparser reads.
    cdc_sql_udfs::syntax::rewrite_tokens(&mut tokens);
    super::temporal::rewrite_tokens(&mut tokens).map_err(|(message, line, column)| {
        Error::user(message).at(Location { source: source.to_string(), line: line as usize, column: column as usize })
    })?;
    let parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let mut p = StatementParser { p: parser, source, env, location: location.clone(), pending_gt: 0 };
    let statement = p.statement()?;
    Ok(LocatedStatement { statement, location })
}

struct StatementParser<'a> {
    p: Parser<'a>,
    source: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    location: Location,
    /// `ARRAY<ARRAY<INT>>` ends in one `>>` token that closes two types.
    pending_gt: usize,
}

/// sqlparser puts the position at the end of its message ("… at Line: 3, Column: 7"); move it to
/// the front where every other located error has it.
fn parser_error(source: &str, e: ParserError, fallback: &Location) -> Error {
    let msg = match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
        ParserError::RecursionLimitExceeded => "statement is nested too deeply".to_string(),
    };
    if let Some(pos) = msg.rfind(" at Line: ") {
        let tail = &msg[pos + " at Line: ".len()..];
        let mut nums = tail.split(", Column: ");
        let line = nums.next().and_then(|l| l.trim().parse().ok());
        let column = nums.next().and_then(|c| c.trim().parse().ok());
        if let (Some(line), Some(column)) = (line, column) {
            let location = Location { source: source.to_string(), line, column };
            return Error::user(format!("syntax error: {}", &msg[..pos])).at(location);
        }
    }
    Error::user(format!("syntax error: {msg}")).at(fallback.clone())
}

fn word_of(tok: &TokenWithSpan) -> Option<String> {
    match &tok.token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

impl StatementParser<'_> {
    fn location_of(&self, tok: &TokenWithSpan) -> Location {
        if tok.span.start.line == 0 {
            return self.location.clone();
        }
        Location {
            source: self.source.to_string(),
            line: tok.span.start.line as usize,
            column: tok.span.start.column as usize,
        }
    }

    fn error_at(&self, tok: &TokenWithSpan, msg: impl Into<String>) -> Error {
        Error::user(msg).at(self.location_of(tok))
    }

    fn syntax(&self, e: ParserError) -> Error {
        parser_error(self.source, e, &self.location)
    }

    fn peek_word(&self) -> Option<String> {
        word_of(&self.p.peek_token())
    }

    fn peek_nth_word(&self, n: usize) -> Option<String> {
        word_of(&self.p.peek_nth_token(n))
    }

    /// Consumes the next token if it is the unquoted word `w`.
    fn eat(&mut self, w: &str) -> bool {
        if self.peek_word().as_deref() == Some(w) {
            self.p.next_token();
            true
        } else {
            false
        }
    }

    fn eat_all(&mut self, words: &[&str]) -> bool {
        let matches = words.iter().enumerate().all(|(i, w)| self.peek_nth_word(i).as_deref() == Some(*w));
        if matches {
            for _ in words {
                self.p.next_token();
            }
        }
        matches
    }

    fn expect(&mut self, w: &str) -> Result<()> {
        if self.eat(w) {
            return Ok(());
        }
        let tok = self.p.peek_token();
        Err(self.error_at(&tok, format!("expected {w}, found {}", tok.token)))
    }

    fn expect_token(&mut self, t: &Token) -> Result<()> {
        self.p.expect_token(t).map(|_| ()).map_err(|e| self.syntax(e))
    }

    fn expect_end(&mut self) -> Result<()> {
        let tok = self.p.peek_token();
        if tok.token == Token::EOF {
            Ok(())
        } else {
            Err(self.error_at(&tok, format!("unexpected {} after the end of the statement", tok.token)))
        }
    }

    fn identifier(&mut self) -> Result<String> {
        self.p.parse_identifier().map(|i| i.value).map_err(|e| self.syntax(e))
    }

    /// A table name: one identifier. Catalogs and databases of Flink's catalog are not supported.
    fn table_name(&mut self) -> Result<String> {
        let tok = self.p.peek_token();
        let name = self.p.parse_object_name(false).map_err(|e| self.syntax(e))?;
        match name.0.as_slice() {
            [part] => Ok(part.as_ident().map(|i| i.value.clone()).unwrap_or_else(|| part.to_string())),
            _ => Err(self.error_at(
                &tok,
                format!(
                    "table name {name} is qualified; cdc-sql has one catalog and one database: use the bare table name"
                ),
            )),
        }
    }

    fn string_literal(&mut self, what: &str) -> Result<String> {
        let tok = self.p.peek_token();
        match &tok.token {
            Token::SingleQuotedString(s) => {
                self.p.next_token();
                Ok(s.clone())
            }
            other => {
                Err(self.error_at(&tok, format!("expected {what} as a quoted string like 'value', found {other}")))
            }
        }
    }

    /// An INSERT or SELECT for DataFusion, with Flink's function syntax (IF, TIMESTAMPADD(DAY, …),
    /// EXTRACT, FLOOR(… TO …), JSON_OBJECT…) turned into calls of cdc-sql's functions.
    fn query_statement(&mut self) -> Result<ast::Statement> {
        let mut stmt = self.p.parse_statement().map_err(|e| self.syntax(e))?;
        cdc_sql_udfs::syntax::rewrite_statement(&mut stmt).map_err(|e| {
            let location = if e.line == 0 {
                self.location.clone()
            } else {
                Location { source: self.source.to_string(), line: e.line as usize, column: e.column as usize }
            };
            Error::user(e.message).at(location)
        })?;
        Ok(stmt)
    }

    fn statement(&mut self) -> Result<Statement> {
        let first = self.p.peek_token();
        let Some(word) = word_of(&first) else {
            return Err(self.error_at(&first, format!("expected a statement, found {}", first.token)));
        };
        let statement = match word.as_str() {
            "CREATE" => self.create()?,
            "DROP" => self.drop()?,
            "SET" => self.set()?,
            "RESET" => self.reset()?,
            "SHOW" => self.show()?,
            "DESCRIBE" | "DESC" => {
                self.p.next_token();
                Statement::Describe { name: self.table_name()? }
            }
            "INSERT" => {
                if self.peek_nth_word(1).as_deref() == Some("OVERWRITE") {
                    return Err(
                        self.error_at(&first, "INSERT OVERWRITE is not supported on changelog sinks: use INSERT INTO")
                    );
                }
                Statement::Insert(Box::new(self.query_statement()?))
            }
            "SELECT" | "WITH" | "VALUES" => Statement::Query(Box::new(self.query_statement()?)),
            "EXECUTE" => return self.statement_set(),
            "BEGIN" => {
                self.p.next_token();
                self.expect("STATEMENT")?;
                self.expect("SET")?;
                Statement::BeginStatementSet
            }
            "END" => {
                self.p.next_token();
                Statement::End
            }
            "HELP" => {
                self.p.next_token();
                Statement::Help
            }
            "QUIT" | "EXIT" => {
                self.p.next_token();
                Statement::Quit
            }
            _ => {
                return Err(self.error_at(
                    &first,
                    format!(
                        "unsupported statement {word}: cdc-sql runs CREATE TABLE, DROP TABLE, SET, RESET, INSERT INTO, \
                         EXECUTE STATEMENT SET, SELECT, SHOW TABLES, SHOW CREATE TABLE and DESCRIBE"
                    ),
                ))
            }
        };
        self.expect_end()?;
        Ok(statement)
    }

    fn statement_set(&mut self) -> Result<Statement> {
        self.expect("EXECUTE")?;
        self.expect("STATEMENT")?;
        self.expect("SET")?;
        self.expect("BEGIN")?;
        let mut inserts = Vec::new();
        loop {
            let tok = self.p.peek_token();
            if self.eat("END") {
                break;
            }
            if tok.token == Token::EOF {
                return Err(self.error_at(&tok, "statement set is missing its END"));
            }
            if word_of(&tok).as_deref() != Some("INSERT") {
                return Err(self.error_at(
                    &tok,
                    format!("a statement set holds only INSERT INTO statements, found {}", tok.token),
                ));
            }
            let stmt = self.query_statement()?;
            inserts.push(LocatedStatement {
                statement: Statement::Insert(Box::new(stmt)),
                location: self.location_of(&tok),
            });
            if !self.p.consume_token(&Token::SemiColon) {
                let next = self.p.peek_token();
                if word_of(&next).as_deref() != Some("END") {
                    return Err(self.error_at(&next, format!("expected ';' after the INSERT, found {}", next.token)));
                }
            }
        }
        self.expect_end()?;
        if inserts.is_empty() {
            return Err(Error::user("statement set is empty: put INSERT INTO statements between BEGIN and END")
                .at(self.location.clone()));
        }
        Ok(Statement::StatementSet(inserts))
    }

    fn drop(&mut self) -> Result<Statement> {
        self.expect("DROP")?;
        self.eat("TEMPORARY");
        let tok = self.p.peek_token();
        if !self.eat("TABLE") {
            return Err(self.error_at(&tok, format!("DROP {} is not supported: only DROP TABLE", tok.token)));
        }
        let if_exists = self.eat_all(&["IF", "EXISTS"]);
        Ok(Statement::DropTable { name: self.table_name()?, if_exists })
    }

    fn set(&mut self) -> Result<Statement> {
        self.expect("SET")?;
        if self.p.peek_token().token == Token::EOF {
            return Ok(Statement::Set { entry: None });
        }
        let key = self.string_literal("the configuration key")?;
        self.expect_token(&Token::Eq)?;
        let value_tok = self.p.peek_token();
        let value = self.string_literal("the value")?;
        let value = substitute(&value, self.env).map_err(|var| {
            self.error_at(
                &value_tok,
                format!("environment variable {var} used in SET '{key}' is not set; export it before running the job"),
            )
        })?;
        Ok(Statement::Set { entry: Some((key, value)) })
    }

    fn reset(&mut self) -> Result<Statement> {
        self.expect("RESET")?;
        if self.p.peek_token().token == Token::EOF {
            return Ok(Statement::Reset { key: None });
        }
        Ok(Statement::Reset { key: Some(self.string_literal("the configuration key")?) })
    }

    fn show(&mut self) -> Result<Statement> {
        self.expect("SHOW")?;
        if self.eat("TABLES") {
            return Ok(Statement::ShowTables);
        }
        if self.eat_all(&["CREATE", "TABLE"]) {
            return Ok(Statement::ShowCreateTable { name: self.table_name()? });
        }
        let tok = self.p.peek_token();
        Err(self.error_at(
            &tok,
            format!("SHOW {} is not supported: use SHOW TABLES or SHOW CREATE TABLE <name>", tok.token),
        ))
    }

    fn create(&mut self) -> Result<Statement> {
        self.expect("CREATE")?;
        self.eat("TEMPORARY");
        let tok = self.p.peek_token();
        if !self.eat("TABLE") {
            return Err(self.error_at(&tok, format!("CREATE {} is not supported: only CREATE TABLE", tok.token)));
        }
        let if_not_exists = self.eat_all(&["IF", "NOT", "EXISTS"]);
        let name_tok = self.p.peek_token();
        let name = self.table_name()?;
        self.expect_token(&Token::LParen)?;

        let mut columns: Vec<ColumnSpec> = Vec::new();
        let mut computed: Vec<ComputedColumn> = Vec::new();
        let mut primary_key: Option<(Vec<String>, TokenWithSpan)> = None;
        loop {
            let tok = self.p.peek_token();
            if self.eat("WATERMARK") {
                return Err(self.error_at(
                    &tok,
                    "WATERMARK is not supported: cdc-sql has no event-time operators; remove the WATERMARK clause",
                ));
            }
            if matches!(self.peek_word().as_deref(), Some("PRIMARY" | "CONSTRAINT")) {
                if self.eat("CONSTRAINT") {
                    self.identifier()?;
                }
                self.expect("PRIMARY")?;
                self.expect("KEY")?;
                self.expect_token(&Token::LParen)?;
                let cols = self.p.parse_comma_separated(|p| p.parse_identifier()).map_err(|e| self.syntax(e))?;
                self.expect_token(&Token::RParen)?;
                self.not_enforced(&tok)?;
                if primary_key.is_some() {
                    return Err(self.error_at(&tok, "a table has at most one PRIMARY KEY"));
                }
                primary_key = Some((cols.into_iter().map(|i| i.value).collect(), tok));
            } else if self.peek_nth_word(1).as_deref() == Some("AS") {
                let column = self.computed_column(columns.len() + computed.len())?;
                if columns.iter().any(|c| c.name == column.name) || computed.iter().any(|c| c.name == column.name) {
                    return Err(self.error_at(&tok, format!("column `{}` is declared twice", column.name)));
                }
                computed.push(column);
            } else {
                let (column, inline_pk) = self.column()?;
                if columns.iter().any(|c| c.name == column.name) || computed.iter().any(|c| c.name == column.name) {
                    return Err(self.error_at(&tok, format!("column `{}` is declared twice", column.name)));
                }
                if inline_pk {
                    if primary_key.is_some() {
                        return Err(self.error_at(&tok, "a table has at most one PRIMARY KEY"));
                    }
                    primary_key = Some((vec![column.name.clone()], tok));
                }
                columns.push(column);
            }
            if self.p.consume_token(&Token::Comma) {
                continue;
            }
            self.expect_token(&Token::RParen)?;
            break;
        }
        if columns.is_empty() {
            return Err(self.error_at(&name_tok, format!("table `{name}` declares no columns")));
        }

        let mut pk = Vec::new();
        if let Some((cols, tok)) = primary_key {
            for c in &cols {
                if computed.iter().any(|x| &x.name == c) {
                    return Err(self.error_at(
                        &tok,
                        format!("PRIMARY KEY column `{c}` is a computed column; keys must be physical columns"),
                    ));
                }
                let Some(col) = columns.iter_mut().find(|x| &x.name == c) else {
                    return Err(self.error_at(&tok, format!("PRIMARY KEY column `{c}` is not a column of `{name}`")));
                };
                if col.metadata.is_some() {
                    return Err(self.error_at(
                        &tok,
                        format!("PRIMARY KEY column `{c}` is a metadata column; keys must be physical columns"),
                    ));
                }
                // Flink makes key columns NOT NULL.
                col.nullable = false;
            }
            pk = cols;
        }

        let mut comment = None;
        if self.eat("COMMENT") {
            comment = Some(self.string_literal("the table comment")?);
        }
        let tok = self.p.peek_token();
        if self.eat("PARTITIONED") {
            return Err(self.error_at(&tok, "PARTITIONED BY is not supported: changelog tables are not partitioned"));
        }
        let tok = self.p.peek_token();
        if !self.eat("WITH") {
            return Err(self.error_at(
                &tok,
                format!("expected WITH ('connector' = '…', …) after the columns of `{name}`, found {}", tok.token),
            ));
        }
        let options = self.options()?;
        let tok = self.p.peek_token();
        if self.eat("LIKE") {
            return Err(
                self.error_at(&tok, "CREATE TABLE … LIKE is not supported: declare the columns and options in full")
            );
        }
        Ok(Statement::CreateTable {
            spec: TableSpec { name, columns, primary_key: pk, options, comment, computed },
            if_not_exists,
        })
    }

    fn not_enforced(&mut self, pk_tok: &TokenWithSpan) -> Result<()> {
        if self.eat_all(&["NOT", "ENFORCED"]) {
            return Ok(());
        }
        Err(self.error_at(
            pk_tok,
            "PRIMARY KEY must be declared NOT ENFORCED, as in Flink: cdc-sql does not own the data, so it cannot \
             enforce the key. Write PRIMARY KEY (…) NOT ENFORCED",
        ))
    }

    fn options(&mut self) -> Result<Vec<TableOption>> {
        self.expect_token(&Token::LParen)?;
        let mut options: Vec<TableOption> = Vec::new();
        if self.p.consume_token(&Token::RParen) {
            return Ok(options);
        }
        loop {
            let key_tok = self.p.peek_token();
            let key = match &key_tok.token {
                Token::SingleQuotedString(s) => {
                    self.p.next_token();
                    s.clone()
                }
                other => {
                    return Err(self.error_at(
                        &key_tok,
                        format!("option keys are quoted strings, as in Flink: write 'key' = 'value' (found {other})"),
                    ))
                }
            };
            self.expect_token(&Token::Eq)?;
            let value_tok = self.p.peek_token();
            let written = self.string_literal(&format!("the value of option '{key}'"))?;
            let value = substitute(&written, self.env).map_err(|var| {
                self.error_at(
                    &value_tok,
                    format!("environment variable {var} used in option '{key}' is not set; export it before running the job"),
                )
            })?;
            if options.iter().any(|o| o.key == key) {
                return Err(self.error_at(&key_tok, format!("option '{key}' is given twice")));
            }
            options.push(TableOption { key, value, written });
            if self.p.consume_token(&Token::Comma) {
                continue;
            }
            self.expect_token(&Token::RParen)?;
            return Ok(options);
        }
    }

    /// `name AS expression [COMMENT '…']`, the `position`th declared column.
    fn computed_column(&mut self, position: usize) -> Result<ComputedColumn> {
        let name = self.identifier()?;
        self.expect("AS")?;
        let expr = self.p.parse_expr().map_err(|e| self.syntax(e))?;
        let mut comment = None;
        if self.eat("COMMENT") {
            comment = Some(self.string_literal("the column comment")?);
        }
        Ok(ComputedColumn { name, expr, position, comment })
    }

    /// `name TYPE [NOT NULL] [METADATA [FROM 'key'] [VIRTUAL]] [PRIMARY KEY NOT ENFORCED] [COMMENT '…']`.
    fn column(&mut self) -> Result<(ColumnSpec, bool)> {
        let name = self.identifier()?;
        let (data_type, type_text, nullable) = self.data_type()?;
        let mut metadata = None;
        if self.eat("METADATA") {
            let key = if self.eat("FROM") { self.string_literal("the metadata key")? } else { name.clone() };
            let is_virtual = self.eat("VIRTUAL");
            metadata = Some(MetadataColumn { key, is_virtual });
        }
        let pk_tok = self.p.peek_token();
        let mut inline_pk = false;
        if self.eat_all(&["PRIMARY", "KEY"]) {
            self.not_enforced(&pk_tok)?;
            inline_pk = true;
        }
        let mut comment = None;
        if self.eat("COMMENT") {
            comment = Some(self.string_literal("the column comment")?);
        }
        Ok((ColumnSpec { name, data_type, nullable, type_text, metadata, comment }, inline_pk))
    }

    /// A Flink type with its nullability: (Arrow type, normalised Flink text, nullable).
    fn data_type(&mut self) -> Result<(DataType, String, bool)> {
        let (mut dt, mut text) = self.base_type()?;
        if self.pending_gt > 0 {
            return Ok((dt, text, true));
        }
        // `INT ARRAY` is Flink's postfix spelling of ARRAY<INT>.
        while self.peek_word().as_deref() == Some("ARRAY") && self.p.peek_nth_token(1).token != Token::Lt {
            self.p.next_token();
            dt = list_of(dt, true);
            text = format!("{text} ARRAY");
        }
        let nullable = if self.eat_all(&["NOT", "NULL"]) {
            false
        } else {
            self.eat("NULL");
            true
        };
        Ok((dt, text, nullable))
    }

    fn optional_number(&mut self) -> Result<Option<u64>> {
        if !self.p.consume_token(&Token::LParen) {
            return Ok(None);
        }
        let n = self.p.parse_literal_uint().map_err(|e| self.syntax(e))?;
        self.expect_token(&Token::RParen)?;
        Ok(Some(n))
    }

    fn close_angle(&mut self) -> Result<()> {
        if self.pending_gt > 0 {
            self.pending_gt -= 1;
            return Ok(());
        }
        let tok = self.p.next_token();
        match tok.token {
            Token::Gt => Ok(()),
            Token::ShiftRight => {
                self.pending_gt = 1;
                Ok(())
            }
            _ => Err(self.error_at(&tok, format!("expected '>', found {}", tok.token))),
        }
    }

    fn base_type(&mut self) -> Result<(DataType, String)> {
        let tok = self.p.next_token();
        let Some(name) = word_of(&tok) else {
            return Err(self.error_at(&tok, format!("expected a data type, found {}", tok.token)));
        };
        let unsigned = |s: &mut Self, signed: DataType, unsigned: DataType, text: &str| {
            if s.eat("UNSIGNED") {
                (unsigned, format!("{text} UNSIGNED"))
            } else {
                (signed, text.to_string())
            }
        };
        Ok(match name.as_str() {
            "STRING" => (DataType::Utf8, "STRING".into()),
            "CHAR" | "CHARACTER" | "VARCHAR" => {
                let varying = name == "VARCHAR" || self.eat("VARYING");
                let n = self.optional_number()?;
                let base = if varying { "VARCHAR" } else { "CHAR" };
                (DataType::Utf8, n.map(|n| format!("{base}({n})")).unwrap_or_else(|| base.to_string()))
            }
            "BOOLEAN" => (DataType::Boolean, "BOOLEAN".into()),
            "BYTES" => (DataType::Binary, "BYTES".into()),
            "BINARY" | "VARBINARY" => {
                let n = self.optional_number()?;
                (DataType::Binary, n.map(|n| format!("{name}({n})")).unwrap_or(name.clone()))
            }
            "DECIMAL" | "DEC" | "NUMERIC" => {
                let (mut p, mut s) = (10u64, 0u64);
                if self.p.consume_token(&Token::LParen) {
                    p = self.p.parse_literal_uint().map_err(|e| self.syntax(e))?;
                    if self.p.consume_token(&Token::Comma) {
                        s = self.p.parse_literal_uint().map_err(|e| self.syntax(e))?;
                    }
                    self.expect_token(&Token::RParen)?;
                }
                if p == 0 || p > 76 || s > p {
                    return Err(self.error_at(&tok, format!("DECIMAL({p}, {s}) is not valid: precision is 1 to 76 and scale at most the precision")));
                }
                let dt = if p <= 38 {
                    DataType::Decimal128(p as u8, s as i8)
                } else {
                    DataType::Decimal256(p as u8, s as i8)
                };
                (dt, format!("DECIMAL({p}, {s})"))
            }
            "TINYINT" => unsigned(self, DataType::Int8, DataType::UInt8, "TINYINT"),
            "SMALLINT" => unsigned(self, DataType::Int16, DataType::UInt16, "SMALLINT"),
            "INT" | "INTEGER" => unsigned(self, DataType::Int32, DataType::UInt32, "INT"),
            "BIGINT" => unsigned(self, DataType::Int64, DataType::UInt64, "BIGINT"),
            "FLOAT" => (DataType::Float32, "FLOAT".into()),
            "DOUBLE" => {
                self.eat("PRECISION");
                (DataType::Float64, "DOUBLE".into())
            }
            "DATE" => (DataType::Date32, "DATE".into()),
            "TIME" => {
                let p = self.precision(&tok, 0)?;
                self.eat_all(&["WITHOUT", "TIME", "ZONE"]);
                let unit = time_unit_for_precision(p);
                let dt = match unit {
                    datafusion::arrow::datatypes::TimeUnit::Second | datafusion::arrow::datatypes::TimeUnit::Millisecond => {
                        DataType::Time32(unit)
                    }
                    _ => DataType::Time64(unit),
                };
                (dt, format!("TIME({p})"))
            }
            "TIMESTAMP" => {
                let p = self.precision(&tok, 6)?;
                let unit = time_unit_for_precision(p);
                if self.eat_all(&["WITH", "LOCAL", "TIME", "ZONE"]) {
                    (DataType::Timestamp(unit, Some(UTC.into())), format!("TIMESTAMP_LTZ({p})"))
                } else if self.eat_all(&["WITH", "TIME", "ZONE"]) {
                    return Err(self.error_at(&tok, "TIMESTAMP WITH TIME ZONE is not a Flink type: use TIMESTAMP_LTZ(p) for an instant or TIMESTAMP(p) for a wall-clock time"));
                } else {
                    self.eat_all(&["WITHOUT", "TIME", "ZONE"]);
                    (DataType::Timestamp(unit, None), format!("TIMESTAMP({p})"))
                }
            }
            "TIMESTAMP_LTZ" => {
                let p = self.precision(&tok, 6)?;
                (DataType::Timestamp(time_unit_for_precision(p), Some(UTC.into())), format!("TIMESTAMP_LTZ({p})"))
            }
            "ARRAY" => {
                self.expect_token(&Token::Lt)?;
                let (item, text, nullable) = self.data_type()?;
                self.close_angle()?;
                (list_of(item, nullable), format!("ARRAY<{}>", with_null(&text, nullable)))
            }
            "MAP" => {
                self.expect_token(&Token::Lt)?;
                let (k, kt, _) = self.data_type()?;
                self.expect_token(&Token::Comma)?;
                let (v, vt, vnull) = self.data_type()?;
                self.close_angle()?;
                let entries = Field::new(
                    "entries",
                    DataType::Struct(Fields::from(vec![Field::new("key", k, false), Field::new("value", v, vnull)])),
                    false,
                );
                (DataType::Map(std::sync::Arc::new(entries), false), format!("MAP<{kt}, {}>", with_null(&vt, vnull)))
            }
            "ROW" => {
                let close = if self.p.consume_token(&Token::Lt) {
                    Token::Gt
                } else {
                    self.expect_token(&Token::LParen)?;
                    Token::RParen
                };
                let mut fields = Vec::new();
                let mut texts = Vec::new();
                loop {
                    let fname = self.identifier()?;
                    let (ft, ftext, fnull) = self.data_type()?;
                    if self.eat("COMMENT") {
                        self.string_literal("the field comment")?;
                    }
                    texts.push(format!("`{fname}` {}", with_null(&ftext, fnull)));
                    fields.push(Field::new(fname, ft, fnull));
                    if !self.p.consume_token(&Token::Comma) {
                        break;
                    }
                }
                if close == Token::Gt {
                    self.close_angle()?;
                } else {
                    self.expect_token(&Token::RParen)?;
                }
                (DataType::Struct(Fields::from(fields)), format!("ROW<{}>", texts.join(", ")))
            }
            "MULTISET" | "INTERVAL" | "RAW" | "NULL" | "DESCRIPTOR" => {
                return Err(self.error_at(&tok, format!("type {name} is not supported in table columns")));
            }
            other => {
                return Err(self.error_at(
                    &tok,
                    format!(
                        "unknown data type {other}; Flink types are STRING, VARCHAR(n), CHAR(n), BOOLEAN, BYTES, BINARY(n), \
                         VARBINARY(n), DECIMAL(p, s), TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, DATE, TIME(p), \
                         TIMESTAMP(p), TIMESTAMP_LTZ(p), ARRAY<T>, MAP<K, V>, ROW<…>"
                    ),
                ))
            }
        })
    }

    fn precision(&mut self, tok: &TokenWithSpan, default: u64) -> Result<u64> {
        let p = self.optional_number()?.unwrap_or(default);
        if p > 9 {
            return Err(
                self.error_at(tok, format!("precision {p} is not valid: fractional seconds go from 0 to 9 digits"))
            );
        }
        Ok(p)
    }
}

fn with_null(text: &str, nullable: bool) -> String {
    if nullable {
        text.to_string()
    } else {
        format!("{text} NOT NULL")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::TimeUnit;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(sql: &str) -> Result<Vec<LocatedStatement>> {
        parse_script("job.sql", sql, &no_env)
    }

    fn create(sql: &str) -> TableSpec {
        match parse(sql).unwrap().remove(0).statement {
            Statement::CreateTable { spec, .. } => spec,
            other => panic!("not a CREATE TABLE: {other:?}"),
        }
    }

    #[test]
    fn flink_ddl_with_types_key_metadata_and_options() {
        let spec = create(
            "CREATE TABLE orders (
               id BIGINT, amount DECIMAL(65, 30), price DECIMAL(10,2), name STRING, code VARCHAR(10),
               ts TIMESTAMP(3), lt TIMESTAMP_LTZ(6), lt2 TIMESTAMP(3) WITH LOCAL TIME ZONE, t TIME, d DATE,
               tags ARRAY<STRING NOT NULL>, m MAP<STRING, INT>, r ROW<a INT, b STRING>, ids INT ARRAY,
               u BIGINT UNSIGNED NOT NULL, b BYTES, nested ARRAY<ARRAY<INT>>,
               db STRING METADATA FROM 'database_name' VIRTUAL, op_ts TIMESTAMP_LTZ(3) METADATA VIRTUAL,
               PRIMARY KEY (id) NOT ENFORCED
             ) COMMENT 'orders table' WITH ('connector' = 'datagen', 'fields.id.kind' = 'sequence');",
        );
        assert_eq!(spec.name, "orders");
        assert_eq!(spec.primary_key, vec!["id"]);
        let col = |n: &str| spec.columns.iter().find(|c| c.name == n).unwrap();
        assert!(!col("id").nullable);
        assert_eq!(col("amount").data_type, DataType::Decimal256(65, 30));
        assert_eq!(col("price").data_type, DataType::Decimal128(10, 2));
        assert_eq!(col("price").type_text, "DECIMAL(10, 2)");
        assert_eq!(col("ts").data_type, DataType::Timestamp(TimeUnit::Millisecond, None));
        assert_eq!(col("lt").data_type, DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())));
        assert_eq!(col("lt2").type_text, "TIMESTAMP_LTZ(3)");
        assert_eq!(col("t").data_type, DataType::Time32(TimeUnit::Second));
        assert_eq!(col("tags").type_text, "ARRAY<STRING NOT NULL>");
        assert_eq!(col("ids").data_type, list_of(DataType::Int32, true));
        assert_eq!(col("u").data_type, DataType::UInt64);
        assert_eq!(col("nested").data_type, list_of(list_of(DataType::Int32, true), true));
        assert!(!col("u").nullable);
        assert_eq!(col("db").metadata, Some(MetadataColumn { key: "database_name".into(), is_virtual: true }));
        assert_eq!(col("op_ts").metadata.as_ref().unwrap().key, "op_ts");
        assert_eq!(spec.persisted_schema().fields().len(), spec.columns.len() - 2);
        assert_eq!(spec.option("fields.id.kind"), Some("sequence"));
        assert_eq!(spec.comment.as_deref(), Some("orders table"));
    }

    #[test]
    fn syntax_errors_point_at_the_job_file() {
        let err =
            parse("SET 'a' = 'b';\n\nCREATE TABLE t (\n  id INT,\n  name STRNG\n) WITH ('connector' = 'datagen');")
                .unwrap_err()
                .to_string();
        assert!(err.starts_with("job.sql:5:8: unknown data type STRNG"), "{err}");

        let err = parse("SHOW TABLES;\nSELECT a FROM t WHERE;").unwrap_err().to_string();
        assert!(err.starts_with("job.sql:2:"), "{err}");
        assert!(err.contains("syntax error"), "{err}");
    }

    #[test]
    fn primary_key_must_be_not_enforced() {
        let err =
            parse("CREATE TABLE t (id INT, PRIMARY KEY (id)) WITH ('connector' = 'datagen');").unwrap_err().to_string();
        assert!(err.contains("NOT ENFORCED"), "{err}");
    }

    #[test]
    fn unquoted_option_keys_are_rejected_with_the_fix() {
        let err = parse("CREATE TABLE t (id INT) WITH (connector = 'datagen');").unwrap_err().to_string();
        assert!(err.contains("option keys are quoted strings"), "{err}");
        assert!(err.starts_with("job.sql:1:31"), "{err}");
    }

    #[test]
    fn environment_references_are_filled_and_missing_ones_named() {
        let env = |n: &str| (n == "PW").then(|| "s3cret".to_string());
        let stmts =
            parse_script("j", "CREATE TABLE t (id INT) WITH ('connector' = 'datagen', 'password' = '${PW}');", &env)
                .unwrap();
        let Statement::CreateTable { spec, .. } = &stmts[0].statement else { panic!() };
        assert_eq!(spec.option("password"), Some("s3cret"));
        assert!(!spec.show_create().contains("s3cret"));

        let err = parse("CREATE TABLE t (id INT) WITH ('connector' = 'x', 'hostname' = '${NO_SUCH_VAR}');")
            .unwrap_err()
            .to_string();
        assert!(err.contains("environment variable NO_SUCH_VAR used in option 'hostname' is not set"), "{err}");
    }

    #[test]
    fn statement_sets_both_syntaxes() {
        let stmts = parse(
            "EXECUTE STATEMENT SET BEGIN\n INSERT INTO a SELECT * FROM b;\n INSERT INTO c SELECT * FROM d;\nEND;\nBEGIN STATEMENT SET;\nEND;",
        )
        .unwrap();
        let Statement::StatementSet(inserts) = &stmts[0].statement else { panic!() };
        assert_eq!(inserts.len(), 2);
        assert_eq!(inserts[1].location.line, 3);
        assert!(matches!(stmts[1].statement, Statement::BeginStatementSet));
        assert!(matches!(stmts[2].statement, Statement::End));
    }

    #[test]
    fn unterminated_statement_is_an_error() {
        let err = parse("SHOW TABLES;\nSHOW TABLES").unwrap_err().to_string();
        assert!(err.starts_with("job.sql:2:1: statement is not terminated"), "{err}");
    }

    #[test]
    fn show_create_masks_secrets() {
        let spec = create("CREATE TABLE t (id INT NOT NULL, PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'jdbc', 'password' = 'hunter2', 'sink.properties.token' = 'abc');");
        let text = spec.show_create();
        assert!(!text.contains("hunter2") && !text.contains("abc"), "{text}");
        assert!(text.contains("'password' = '******'"));
        assert!(text.contains("PRIMARY KEY (`id`) NOT ENFORCED"));
    }
}

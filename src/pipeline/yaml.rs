//! A pipeline definition's YAML as a tree whose every key and value knows its line and column,
//! so that each error can point at what the user wrote. Built from `yaml-rust2`'s event parser
//! (serde-based YAML loses positions); anchors and aliases, which Flink CDC's definitions do not
//! use, are refused rather than expanded.

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

use crate::error::{Error, Location, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar as written (quotes removed); a missing value (`key:`) is the empty plain scalar.
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub at: Location,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_at: Location,
    pub value: Node,
}

impl Node {
    /// What kind of value this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Scalar(_) => "a single value",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping of keys to values",
        }
    }

    /// The entries of a mapping; `what` names the node for the error otherwise.
    pub fn entries(&self, what: &str) -> Result<&[Entry]> {
        match &self.value {
            Value::Map(entries) => Ok(entries),
            _ => Err(Error::user(format!("{what} must be a mapping of keys to values, not {}", self.kind()))
                .at(self.at.clone())),
        }
    }

    /// The text of a scalar; `what` names the node for the error otherwise.
    pub fn scalar(&self, what: &str) -> Result<&str> {
        match &self.value {
            Value::Scalar(text) => Ok(text),
            _ => Err(Error::user(format!("{what} must be a single value, not {}", self.kind())).at(self.at.clone())),
        }
    }
}

fn location(source: &str, mark: &Marker) -> Location {
    Location { source: source.to_string(), line: mark.line(), column: mark.col() + 1 }
}

/// Parses one YAML document; `source` names the file in locations.
pub fn parse(source: &str, text: &str) -> Result<Node> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder { source, stack: Vec::new(), root: None };
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| Error::user(format!("not valid YAML: {}", e.info())).at(location(source, e.marker())))?;
        if event == Event::StreamEnd {
            break;
        }
        builder.event(event, &mark)?;
    }
    builder.root.ok_or_else(|| {
        Error::user("the pipeline definition is empty; it needs at least a `source` and a `sink` block").at(Location {
            source: source.to_string(),
            line: 1,
            column: 1,
        })
    })
}

/// A mapping or sequence being read, and for a mapping the key waiting for its value.
enum Open {
    Map { at: Location, entries: Vec<Entry>, key: Option<(String, Location)> },
    Seq { at: Location, items: Vec<Node> },
}

struct Builder<'s> {
    source: &'s str,
    stack: Vec<Open>,
    root: Option<Node>,
}

impl Builder<'_> {
    fn event(&mut self, event: Event, mark: &Marker) -> Result<()> {
        let at = location(self.source, mark);
        match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => Ok(()),
            Event::DocumentStart if self.root.is_some() => {
                Err(Error::user("a pipeline definition is one YAML document; remove the second `---`").at(at))
            }
            Event::DocumentStart => Ok(()),
            Event::Alias(_) => Err(Error::user(
                "YAML aliases (`*name`) are not supported in pipeline definitions; write the value out",
            )
            .at(at)),
            Event::Scalar(text, _, anchor, _) => {
                self.no_anchor(anchor, &at)?;
                self.value(Node { value: Value::Scalar(text), at })
            }
            Event::MappingStart(anchor, _) => {
                self.no_anchor(anchor, &at)?;
                self.stack.push(Open::Map { at, entries: Vec::new(), key: None });
                Ok(())
            }
            Event::SequenceStart(anchor, _) => {
                self.no_anchor(anchor, &at)?;
                self.stack.push(Open::Seq { at, items: Vec::new() });
                Ok(())
            }
            Event::MappingEnd | Event::SequenceEnd => match self.stack.pop() {
                // The parser marks a block mapping where its first value is: its first key is
                // where the user sees it start.
                Some(Open::Map { at, entries, .. }) => {
                    let at = entries.first().map_or(at, |e| e.key_at.clone());
                    self.value(Node { value: Value::Map(entries), at })
                }
                Some(Open::Seq { at, items }) => self.value(Node { value: Value::Seq(items), at }),
                None => Err(Error::internal("the YAML parser closed a block it never opened")),
            },
            Event::StreamEnd => Ok(()),
        }
    }

    fn no_anchor(&self, anchor: usize, at: &Location) -> Result<()> {
        if anchor == 0 {
            return Ok(());
        }
        Err(Error::user("YAML anchors (`&name`) are not supported in pipeline definitions; write the value out")
            .at(at.clone()))
    }

    /// A finished value: the key or value of the open mapping, an item of the open sequence, or
    /// the document.
    fn value(&mut self, node: Node) -> Result<()> {
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Open::Seq { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Open::Map { entries, key, .. }) => match key.take() {
                None => match node.value {
                    Value::Scalar(text) => {
                        if let Some(first) = entries.iter().find(|e| e.key == text) {
                            return Err(Error::user(format!(
                                "key `{text}` is given twice in one block (first at line {})",
                                first.key_at.line
                            ))
                            .at(node.at));
                        }
                        *key = Some((text, node.at));
                        Ok(())
                    }
                    _ => Err(Error::user("a key must be a single value, not a list or a mapping").at(node.at)),
                },
                Some((name, key_at)) => {
                    entries.push(Entry { key: name, key_at, value: node });
                    Ok(())
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_know_their_lines() {
        let root =
            parse("p.yaml", "source:\n  type: mysql\n  tables: app_db.\\.*\nroute:\n  - source-table: a.b\n").unwrap();
        let top = root.entries("the definition").unwrap();
        assert_eq!(
            top.iter().map(|e| (e.key.as_str(), e.key_at.line)).collect::<Vec<_>>(),
            [("source", 1), ("route", 4)]
        );
        let source = top[0].value.entries("source").unwrap();
        assert_eq!(source[1].value.scalar("tables").unwrap(), "app_db.\\.*");
        assert_eq!((source[1].key_at.line, source[1].key_at.column), (3, 3));
        let Value::Seq(routes) = &top[1].value.value else { panic!("a list") };
        assert_eq!(routes[0].entries("route").unwrap()[0].key_at.line, 5);
    }

    #[test]
    fn bad_yaml_twice_given_keys_and_aliases_are_located_errors() {
        let cases = [
            ("source:\n  type: [mysql\n", "p.yaml:3:1: not valid YAML"),
            (
                "sink:\n  type: print\n  type: jdbc\n",
                "p.yaml:3:3: key `type` is given twice in one block (first at line 2)",
            ),
            ("a: &x 1\nb: *x\n", "p.yaml:1:7: YAML anchors"),
            ("", "p.yaml:1:1: the pipeline definition is empty"),
        ];
        for (text, expected) in cases {
            let error = parse("p.yaml", text).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{text:?}: {error}");
        }
    }
}

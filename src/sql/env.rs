//! `${NAME}` references in option values, filled from the environment when the statement runs,
//! so job files can be shared without their secrets.

/// Replaces every `${NAME}` in `value`. Returns the first unset variable's name as the error.
pub fn substitute(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + 2 + len];
        out.push_str(&rest[..start]);
        match lookup(name) {
            Some(v) => out.push_str(&v),
            None => return Err(name.to_string()),
        }
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "HOST").then(|| "db.local".to_string())
    }

    #[test]
    fn fills_references_and_keeps_other_dollars() {
        assert_eq!(substitute("${HOST}:5432", &env).unwrap(), "db.local:5432");
        assert_eq!(substitute("a$b ${HOST}${HOST}", &env).unwrap(), "a$b db.localdb.local");
        assert_eq!(substitute("no ref ${", &env).unwrap(), "no ref ${");
    }

    #[test]
    fn names_the_unset_variable() {
        assert_eq!(substitute("x ${NOPE} y", &env).unwrap_err(), "NOPE");
    }
}

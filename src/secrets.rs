//! The values of secret options (`password`, `token`, … — see [`crate::sql::table::is_secret_key`])
//! of the tables a process declared, so text leaving the process (logs, errors, the REST API) can
//! be masked even where a message quotes a secret by accident (a connection URL, a server reply).

use std::sync::RwLock;

use crate::sql::table::MASK;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Values this short would mask ordinary words and numbers; they are not worth it as secrets.
const SHORTEST_MASKED: usize = 3;

/// Remembers secret values to mask from now on.
pub fn register<I: IntoIterator<Item = String>>(values: I) {
    if let Ok(mut secrets) = SECRETS.write() {
        for v in values {
            if v.chars().count() >= SHORTEST_MASKED && !secrets.contains(&v) {
                secrets.push(v);
            }
        }
        // Longest first, so a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// `text` with every registered secret replaced by the mask.
pub fn redact(text: &str) -> String {
    let Ok(secrets) = SECRETS.read() else { return text.to_string() };
    let mut out = text.to_string();
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_are_masked_and_short_ones_ignored() {
        register(["hunter2-secret".to_string(), "hunter2".to_string(), "ab".to_string()]);
        assert_eq!(redact("mysql://root:hunter2-secret@db/x and hunter2"), "mysql://root:******@db/x and ******");
        assert_eq!(redact("ab cd"), "ab cd");
    }
}

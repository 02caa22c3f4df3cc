//! Messages as Debezium's, Canal's and Flink's documentation and tests publish them
//! (`tests/fixtures/formats/`, see its README), decoded with the declared table and compared with
//! the expected changelog.

use std::path::{Path, PathBuf};

use super::tests::decode_to_text;

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    entries
}

/// The messages of a fixture file: one per `.json` file, one per line of a `.jsonl` file (`~`
/// for a null value).
fn messages(path: &Path) -> Vec<Option<Vec<u8>>> {
    let bytes = std::fs::read(path).unwrap();
    if path.extension().is_some_and(|e| e == "jsonl") {
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| if l.trim() == "~" { None } else { Some(l.as_bytes().to_vec()) })
            .collect()
    } else {
        vec![Some(bytes)]
    }
}

#[test]
fn published_messages_decode_to_their_expected_changelogs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats");
    let mut checked = 0;
    let mut failures = Vec::new();
    for group in sorted_entries(&root).into_iter().filter(|p| p.is_dir()) {
        let sql = std::fs::read_to_string(group.join("table.sql"))
            .unwrap_or_else(|e| panic!("{}: every fixture folder needs a table.sql ({e})", group.display()));
        for file in sorted_entries(&group) {
            let Some(ext) = file.extension().and_then(|e| e.to_str()) else { continue };
            if ext != "json" && ext != "jsonl" {
                continue;
            }
            let expected_path = file.with_extension("out");
            let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
                panic!("{} has no expected changelog {} ({e})", file.display(), expected_path.display())
            });
            let messages = messages(&file);
            let views: Vec<Option<&[u8]>> = messages.iter().map(|m| m.as_deref()).collect();
            let actual = decode_to_text(&sql, &views);
            if actual != expected {
                failures.push(format!("{}:\n--- expected\n{expected}--- actual\n{actual}", file.display()));
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 15, "only {checked} fixtures found under {}", root.display());
}

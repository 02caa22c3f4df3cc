//! `route`: which sink table each source table is written to, as Flink CDC decides it in its
//! default route mode (every rule whose `source-table` matches applies, so one table may go to
//! several sink tables, and several tables may merge into one; a table no rule matches keeps its
//! own name). In `sink-table`, `replace-symbol` stands for the source table's name and `$1`, `$2`…
//! for the groups of `source-table`'s expression (numbered across database and table).

use super::definition::Route;

/// The sink tables of source table `database.table`, each with the rule that named it (`None`
/// for the table's own name), in rule order.
pub fn sink_tables<'r>(routes: &'r [Route], source: &str) -> Vec<(String, Option<&'r Route>)> {
    let table = source.split_once('.').map_or(source, |(_, t)| t);
    let mut targets: Vec<(String, Option<&Route>)> = Vec::new();
    for route in routes {
        let Some(captures) = route.source_table.captures(source) else { continue };
        let mut name = String::new();
        captures.expand(&route.sink_table, &mut name);
        if let Some(symbol) = &route.replace_symbol {
            name = name.replace(symbol.as_str(), table);
        }
        if !targets.iter().any(|(t, _)| *t == name) {
            targets.push((name, Some(route)));
        }
    }
    if targets.is_empty() {
        targets.push((source.to_string(), None));
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::selection::TablePattern;
    use crate::error::Location;

    fn route(source: &str, sink: &str, symbol: Option<&str>) -> Route {
        Route {
            source_table: TablePattern::parse(source, 2, "database.table").unwrap(),
            sink_table: sink.to_string(),
            replace_symbol: symbol.map(str::to_string),
            at: Location { source: "p.yaml".into(), line: 1, column: 1 },
        }
    }

    #[test]
    fn routes_rename_merge_and_fan_out() {
        let routes = [
            route("app_db.order_[0-9]+", "ods.orders", None),
            route("app_(\\w+).user_([0-9]+)", "ods_$1.users_$2", None),
            route("app_db.\\.*", "ods.app_<>", Some("<>")),
        ];
        let names = |source: &str| sink_tables(&routes, source).into_iter().map(|(t, _)| t).collect::<Vec<_>>();
        assert_eq!(
            names("app_db.order_1"),
            ["ods.orders", "ods.app_order_1"],
            "sharded tables merge; every rule applies"
        );
        assert_eq!(names("app_eu.user_7"), ["ods_eu.users_7"]);
        assert_eq!(names("app_db.items"), ["ods.app_items"]);
        assert_eq!(names("other.items"), ["other.items"], "no rule: the table's own name");
    }
}

//! The docker compose deployment, checked without a container engine: the compose file parses,
//! the sources run with the settings CDC needs, every cdc-sql service runs one job file of
//! `sql/compose/` with its own state volume and host port, and every job file parses.

use std::collections::HashSet;
use std::path::PathBuf;

use serde_yaml::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let mut value: Value = serde_yaml::from_str(&text).unwrap();
    // `<<: *anchor` merge keys, as compose applies them.
    value.apply_merge().unwrap();
    value
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items.iter().filter_map(|i| i.as_str().map(String::from)).collect(),
        Value::String(s) => s.split_whitespace().map(String::from).collect(),
        _ => Vec::new(),
    }
}

/// (service name, job file name) for every service that runs a cdc-sql job.
fn job_services(compose: &Value) -> Vec<(String, String)> {
    let services = compose["services"].as_mapping().unwrap();
    services
        .iter()
        .filter_map(|(name, service)| {
            let command = strings(&service["command"]);
            let file = command.windows(2).find(|w| w[0] == "-f").map(|w| w[1].clone())?;
            Some((name.as_str()?.to_string(), file))
        })
        .collect()
}

#[test]
fn sources_are_configured_for_cdc() {
    let compose = compose();
    // The MySQL-protocol source is MariaDB, the server mysql-cdc is tested against (its GTIDs
    // are always on; it has no gtid-mode option and would refuse one).
    let image = compose["services"]["mysql"]["image"].as_str().unwrap_or_default();
    assert!(image.starts_with("mariadb:"), "{image}");
    let mysql = strings(&compose["services"]["mysql"]["command"]).join(" ");
    for flag in ["--binlog-format=ROW", "--binlog-row-image=FULL", "--log-bin", "--server-id="] {
        assert!(mysql.contains(flag), "mysql lacks {flag}: {mysql}");
    }
    assert!(!mysql.contains("gtid-mode"), "MariaDB has no gtid-mode option: {mysql}");
    let postgres = strings(&compose["services"]["postgres"]["command"]).join(" ");
    assert!(postgres.contains("wal_level=logical"), "{postgres}");
    assert!(compose["services"]["warehouse"]["image"].as_str().is_some(), "a sink database");
}

#[test]
fn one_job_service_per_table_each_with_state_port_and_a_parsing_job_file() {
    let compose = compose();
    let jobs = job_services(&compose);
    assert!(jobs.len() >= 3, "{jobs:?}");
    let declared_volumes: HashSet<String> =
        compose["volumes"].as_mapping().unwrap().keys().filter_map(|k| k.as_str().map(String::from)).collect();
    let mut host_ports = HashSet::new();
    let mut state_volumes = HashSet::new();
    let mut job_files = HashSet::new();
    for (name, file) in &jobs {
        let service = &compose["services"][name.as_str()];
        let table = file
            .strip_prefix("/jobs/")
            .and_then(|f| f.strip_suffix(".sql"))
            .unwrap_or_else(|| panic!("{name} runs {file}, not /jobs/<table>.sql"));
        assert!(job_files.insert(table.to_string()), "two services run {file}");
        assert!(service["build"].is_string() || service["image"].is_string(), "{name} has no image");

        let volumes = strings(&service["volumes"]);
        assert!(
            volumes.contains(&"./sql/compose:/jobs:ro".to_string()),
            "{name} does not mount the job files: {volumes:?}"
        );
        let state = volumes
            .iter()
            .find_map(|v| v.strip_suffix(":/var/lib/cdc-sql"))
            .unwrap_or_else(|| panic!("{name} has no state volume at /var/lib/cdc-sql: {volumes:?}"));
        assert!(declared_volumes.contains(state), "{name}: volume {state} is not declared");
        assert!(state_volumes.insert(state.to_string()), "{name} shares state volume {state}");

        let ports = strings(&service["ports"]);
        assert_eq!(ports.len(), 1, "{name}: {ports:?}");
        let (host, container) = ports[0].split_once(':').unwrap();
        assert_eq!(container, "8081", "{name}: the image serves HTTP on 8081");
        assert!(host_ports.insert(host.to_string()), "{name} reuses host port {host}");

        let path = root().join("sql/compose").join(format!("{table}.sql"));
        let sql = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let env = service["environment"].as_mapping().unwrap();
        let lookup = |var: &str| env.get(var).and_then(|v| v.as_str()).map(String::from);
        let statements =
            cdc_sql::sql::parse_script(&path.display().to_string(), &sql, &lookup).unwrap_or_else(|e| panic!("{e}"));
        assert!(statements.len() >= 3, "{}", path.display());
        assert!(
            sql.contains(&format!("'pipeline.name' = '{table}'")),
            "{}: name the job after its table",
            path.display()
        );
    }
    let on_disk: HashSet<String> = std::fs::read_dir(root().join("sql/compose"))
        .unwrap()
        .filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(String::from))
        .collect();
    assert_eq!(on_disk, job_files, "every job file has its service");
}

#[test]
fn the_image_is_built_in_two_stages_and_serves_on_all_interfaces() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let stages: Vec<&str> = dockerfile.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert!(stages[0].contains("rust") && stages[0].ends_with("AS builder"), "{stages:?}");
    assert!(stages[1].contains("slim"), "{stages:?}");
    assert!(
        dockerfile.contains("CDC_SQL_HTTP_ADDR=0.0.0.0:8081") && dockerfile.contains("XDG_STATE_HOME=/var/lib/cdc-sql")
    );
    assert!(dockerfile.contains(r#"ENTRYPOINT ["cdc-sql"]"#));
}

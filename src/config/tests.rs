//! Settings: layering, validation, environment parsing.
use super::*;
use std::io::Write;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn flags_beat_environment_which_beats_the_file() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        file,
        "http = \"127.0.0.1:1111\"\nrate_limit_per_sec = 5\npayment_ttl_secs = 9"
    )
    .unwrap();
    let vars = env(&[
        ("AGORA_HTTP", "127.0.0.1:2222"),
        ("AGORA_RATE_LIMIT_PER_SEC", "7"),
    ]);
    let flags = Overrides {
        http: Some("127.0.0.1:3333".into()),
        ..Default::default()
    };
    let settings = Settings::load_from(Some(file.path()), &vars, &flags).unwrap();
    assert_eq!(settings.http.port(), 3333, "flag wins");
    assert_eq!(settings.rate_limit_per_sec, 7, "environment beats the file");
    assert_eq!(settings.payment_ttl_secs, 9, "the file beats the default");
    assert_eq!(settings.checkout_wait_ms, 5_000, "default");
}

#[test]
fn every_problem_is_reported_at_once() {
    let vars = env(&[
        ("AGORA_REQUEST_TIMEOUT_MS", "0"),
        ("AGORA_CORS_ORIGINS", "[\"ftp://x\"]"),
    ]);
    let message = Settings::load_from(None, &vars, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(message.contains("request_timeout_ms"), "{message}");
    assert!(message.contains("cors_origins"), "{message}");
}

#[test]
fn environment_text_stays_text_and_lists_may_be_comma_separated() {
    let vars = env(&[
        ("AGORA_NODE_ID", "1"),
        (
            "AGORA_CORS_ORIGINS",
            "https://shop.example, https://admin.example",
        ),
    ]);
    let empty = tempfile::NamedTempFile::new().unwrap();
    let settings = Settings::load_from(Some(empty.path()), &vars, &Overrides::default()).unwrap();
    assert_eq!(settings.node_id, "1");
    assert_eq!(
        settings.cors_origins,
        ["https://shop.example", "https://admin.example"]
    );
}

#[test]
fn unknown_file_keys_and_bad_addresses_are_refused() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "htp = \"127.0.0.1:1\"").unwrap();
    assert!(Settings::load_from(Some(file.path()), &[], &Overrides::default()).is_err());
    let vars = env(&[("AGORA_HTTP", "not-an-address")]);
    assert!(Settings::load_from(None, &vars, &Overrides::default()).is_err());
}

#[test]
fn the_admin_listener_is_off_by_default_and_set_by_environment_or_flag() {
    let empty = tempfile::NamedTempFile::new().unwrap();
    let none = Settings::load_from(Some(empty.path()), &[], &Overrides::default()).unwrap();
    assert_eq!(none.admin_http, None);
    let vars = env(&[("AGORA_ADMIN_HTTP", "127.0.0.1:9100")]);
    let from_env = Settings::load_from(Some(empty.path()), &vars, &Overrides::default()).unwrap();
    assert_eq!(from_env.admin_http, Some("127.0.0.1:9100".parse().unwrap()));
    let flags = Overrides {
        admin_http: Some("127.0.0.1:9200".into()),
        ..Default::default()
    };
    let from_flag = Settings::load_from(Some(empty.path()), &vars, &flags).unwrap();
    assert_eq!(
        from_flag.admin_http,
        Some("127.0.0.1:9200".parse().unwrap())
    );
    let clash = env(&[
        ("AGORA_HTTP", "127.0.0.1:9300"),
        ("AGORA_ADMIN_HTTP", "127.0.0.1:9300"),
    ]);
    let message = Settings::load_from(Some(empty.path()), &clash, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(message.contains("admin_http"), "{message}");
}

fn from_file(text: &str) -> Result<Settings, String> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    Settings::load_from(Some(file.path()), &[], &Overrides::default()).map_err(|e| e.to_string())
}

#[test]
fn a_cluster_takes_one_nats_url_or_a_list_and_defaults_to_1024_shards() {
    let one = from_file(
        "node_id = \"a\"\n[cluster]\nnats = \"nats://127.0.0.1:4222\"\n\
         [[cluster.nodes]]\nid = \"a\"\nhttp = \"127.0.0.1:8081\"\n\
         [[cluster.nodes]]\nid = \"b\"\nhttp = \"127.0.0.1:8082\"\n",
    )
    .unwrap();
    assert_eq!(one.cluster.nats, vec!["nats://127.0.0.1:4222"]);
    assert_eq!(one.cluster.shards, 1024);
    assert_eq!(
        (one.cluster.replicas, one.cluster.call_timeout_ms),
        (1, 5_000)
    );
    assert!(one.cluster.is_clustered());
    let many = from_file(
        "node_id = \"a\"\n[cluster]\nnats = [\"nats://h1:4222\", \"tls://h2:4222\"]\n\
         [[cluster.nodes]]\nid = \"a\"\nhttp = \"127.0.0.1:8081\"\n",
    )
    .unwrap();
    assert_eq!(many.cluster.nats.len(), 2);
    assert!(
        !Settings::default().cluster.is_clustered(),
        "a single node by default"
    );
}

#[test]
fn a_cluster_refuses_ids_nats_cannot_route_peers_without_nats_and_too_many_shards() {
    let problem = from_file(
        "node_id = \"a.b\"\n[cluster]\nshards = 70000\n\
         [[cluster.nodes]]\nid = \"a.b\"\nhttp = \"127.0.0.1:8081\"\n\
         [[cluster.nodes]]\nid = \"c\"\nhttp = \"127.0.0.1:8082\"\n",
    )
    .unwrap_err();
    assert!(
        problem.contains("cluster.nodes: id \"a.b\" must be"),
        "{problem}"
    );
    assert!(
        problem.contains("cluster.shards must be between 1 and 65536"),
        "{problem}"
    );
    assert!(problem.contains("cluster.nats is not set"), "{problem}");
    let problem = from_file("[cluster]\nnats = \"http://x:4222\"\n").unwrap_err();
    assert!(problem.contains("is not a nats://"), "{problem}");
    assert!(problem.contains("cluster.nodes is empty"), "{problem}");
    let problem = from_file("[cluster]\nreplicas = 7\ncall_timeout_ms = 1\n").unwrap_err();
    assert!(
        problem.contains("cluster.replicas must be between 1 and 5"),
        "{problem}"
    );
    assert!(
        problem.contains("cluster.call_timeout_ms must be between"),
        "{problem}"
    );
}

#[test]
fn each_node_of_the_example_cluster_listens_on_its_entry_unless_told_otherwise() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster.example.toml");
    let as_node = |id: &str| Overrides {
        node_id: Some(id.into()),
        ..Default::default()
    };
    for (id, port) in [("node-1", 8081), ("node-2", 8082), ("node-3", 8083)] {
        let settings = Settings::load_from(Some(&example), &[], &as_node(id)).unwrap();
        assert_eq!(settings.http.port(), port, "{id}");
        assert!(settings.cluster.is_clustered());
        assert_eq!(settings.cluster.nodes.len(), 3);
    }
    let flag = Overrides {
        http: Some("127.0.0.1:9999".into()),
        ..as_node("node-2")
    };
    let settings = Settings::load_from(Some(&example), &[], &flag).unwrap();
    assert_eq!(settings.http.port(), 9999, "a flag wins");
    let vars = env(&[("AGORA_HTTP", "127.0.0.1:7777")]);
    let settings = Settings::load_from(Some(&example), &vars, &as_node("node-2")).unwrap();
    assert_eq!(settings.http.port(), 7777, "the environment wins");
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let text = std::fs::read_to_string(&example).unwrap();
    writeln!(file, "http = \"127.0.0.1:6666\"\n{text}").unwrap();
    let settings = Settings::load_from(Some(file.path()), &[], &as_node("node-2")).unwrap();
    assert_eq!(settings.http.port(), 6666, "the file's own http wins");
}

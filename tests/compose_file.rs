//! docker-compose.yml cannot be started here (no container engine), so its structure is checked:
//! the topology, the relay's command line against the `run` contract, addresses and ports that
//! agree with each other, and the Pika confs it mounts.

use serde_yaml::Value;

fn load() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
        .unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

#[test]
fn topology_is_old_master_relay_new_slave() {
    let c = load();
    let svc = &c["services"];
    for name in ["old-master", "relay", "new-slave", "attach"] {
        assert!(svc[name].is_mapping(), "service {name} missing");
    }
    assert!(s(&svc["old-master"]["image"]).contains("pika"));
    assert!(s(&svc["new-slave"]["image"]).contains("pika"));
    assert_eq!(s(&svc["relay"]["build"]), ".");

    let cmd: Vec<String> = svc["relay"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert_eq!(cmd[0], "run");
    let flag = |f: &str| {
        cmd.iter()
            .position(|x| x == f)
            .map(|i| cmd[i + 1].clone())
            .unwrap_or_else(|| panic!("relay lacks {f}"))
    };
    let master_ip = s(&svc["old-master"]["networks"]["pika"]["ipv4_address"]);
    let relay_ip = s(&svc["relay"]["networks"]["pika"]["ipv4_address"]);
    let slave_ip = s(&svc["new-slave"]["networks"]["pika"]["ipv4_address"]);
    assert_eq!(flag("--master"), format!("{master_ip}:9221"));
    assert_eq!(flag("--advertise-ip"), relay_ip);
    let port = flag("--port");
    assert!(!flag("--data-dir").is_empty());

    // The operator's `slaveof` names exactly the advertised ip and port (the slave checks the
    // full-sync info file against it).
    let attach = svc["attach"]["entrypoint"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(s)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        attach.contains(&format!("-h {slave_ip} -p 9221 slaveof {relay_ip} {port}")),
        "{attach}"
    );

    // Mounted confs exist and agree on binlog-file-size with the relay default.
    for (svc_name, conf) in [
        ("old-master", "docker/old-master.conf"),
        ("new-slave", "docker/new-slave.conf"),
    ] {
        let vols: Vec<String> = svc[svc_name]["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(s)
            .collect();
        assert!(
            vols.iter().any(|v| v.starts_with(&format!("./{conf}:"))),
            "{svc_name} mounts {conf}"
        );
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_string() + conf)
                .unwrap();
        assert!(text.contains("port : 9221"), "{conf}");
        assert!(text.contains("binlog-file-size : 104857600"), "{conf}");
    }
    assert!(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).is_file());
}

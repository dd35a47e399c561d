//! `pika-relay run` honours the config file's settings that take effect before the relay starts:
//! `relay.log_level` decides which lines the process writes.

#[path = "support/net.rs"]
mod net;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the relay with `toml` until its admin port answers, then stops it with SIGTERM (by its
/// PID) and returns what it wrote to stderr.
fn run_until_up(toml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let port = net::free_base(&[1000, 2000, 3000]);
    let f = dir.path().join("relay.toml");
    std::fs::write(
        &f,
        format!(
            "[relay]\nport = {port}\nbind = \"127.0.0.1\"\ndata_dir = \"{}\"\n{toml}\n\
             [upstream]\nmaster = \"127.0.0.1:1\"\n[metrics]\nlisten = \"\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_pika-relay"))
        .args([
            "run",
            "--config",
            f.to_str().unwrap(),
            "--skip-master-check",
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the relay never listened on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn log_level_from_the_config_file_is_honoured() {
    let info = run_until_up("log_level = \"info\"");
    assert!(info.contains("relay: up"), "{info}");
    let warn = run_until_up("log_level = \"warn\"");
    assert!(
        !warn.contains("relay: up"),
        "info lines at log_level warn:\n{warn}"
    );
    assert!(
        !warn.contains(" INFO "),
        "info lines at log_level warn:\n{warn}"
    );
}

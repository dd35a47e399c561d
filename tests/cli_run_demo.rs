//! The README's main command (`demo`) and the `run` contract, as a user runs them.

use std::process::Command;

fn relay(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pika-relay"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_moves_all_data_and_exits_zero() {
    let (ok, out, err) = relay(&[
        "demo",
        "--seconds",
        "2",
        "--initial-keys",
        "2000",
        "--rate",
        "1000",
    ]);
    assert!(ok, "demo failed:\n{out}\n{err}");
    assert!(
        out.contains("both new slaves hold exactly the old master's data"),
        "{out}"
    );
    for field in [
        "entries relayed by binlog",
        "end-to-end lag",
        "full sync (upstream)",
        "full sync (slave A)",
    ] {
        assert!(out.contains(field), "summary lacks {field}: {out}");
    }
}

#[test]
fn run_refuses_a_busy_port_and_names_it() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = relay(&[
        "run",
        "--master",
        "127.0.0.1:1",
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--skip-master-check",
    ]);
    assert!(!ok);
    assert!(
        err.contains(&format!("port {port} (R+0")) && err.contains("--port"),
        "{err}"
    );
}

#[test]
fn run_flags_override_the_config_file_and_bad_files_are_named() {
    use clap::Parser;
    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: pika_relay::cli::run::RunArgs,
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("relay.toml");
    std::fs::write(
        &f,
        "[relay]\nport = 7000\n[upstream]\nmaster = \"10.0.0.1:9221\"\nmasterauth = \"x\"\n",
    )
    .unwrap();
    let t = T::parse_from([
        "t",
        "--config",
        f.to_str().unwrap(),
        "--port",
        "7100",
        "--requirepass",
        "pw",
    ]);
    let c = t.a.config().unwrap();
    assert_eq!(c.relay.port, 7100);
    assert_eq!(c.upstream.master, "10.0.0.1:9221");
    assert_eq!(c.upstream.masterauth, "x");
    assert_eq!(c.downstream.requirepass, "pw");
    std::fs::write(&f, "[relay]\nport = \"x\"\n").unwrap();
    let t = T::parse_from(["t", "--config", f.to_str().unwrap()]);
    let e = t.a.config().unwrap_err().to_string();
    assert!(e.contains("relay.toml") && e.contains("port"), "{e}");
    let (ok, _, err) = relay(&["run"]);
    assert!(!ok && err.contains("--master"), "{err}");
}

//! The `ipc-chaos` binary behaves like a command-line tool: `--help`,
//! `--version`, exit code 2 on bad arguments, `--json -` on stdout.

use std::process::Command;

fn chaos(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ipc-chaos"))
        .args(args)
        .output()
        .expect("run ipc-chaos")
}

#[test]
fn help_and_version_exit_0() {
    let out = chaos(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for option in ["--duration", "--seed", "--scenario", "--json", "--progress"] {
        assert!(text.contains(option), "{option} missing from:\n{text}");
    }
    let out = chaos(&["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_arguments_exit_2_with_a_reason() {
    for args in [
        &["--duration", "ten"][..],
        &["--seed", "0xzz"],
        &["--no-such-option"],
    ] {
        let out = chaos(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: no reason given");
    }
}

#[test]
fn json_on_stdout_is_the_report() {
    let out = chaos(&[
        "--rounds",
        "2",
        "--scenario",
        "event",
        "--seed",
        "7",
        "--json",
        "-",
    ]);
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(doc["report"]["seed"], 7);
    assert_eq!(doc["report"]["rounds"], 2);
    assert!(doc["goals"].as_array().is_some_and(|g| g.len() == 12));
    assert_eq!(doc["clean"], out.status.success());
}

#[test]
fn the_list_names_every_scenario() {
    let out = chaos(&["--list"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ipc_chaos::scenario_names() {
        assert!(text.lines().any(|l| l == name), "{name}");
    }
}

//! The `agora-load` binary's command line, without a server: the checks it
//! makes before any request. (Being an integration test, this also has
//! `cargo test` build the binary, which `agora load` in the server's API
//! tests runs.)

use std::process::Command;

/// Runs `agora-load` with `args`: (exit code, stdout, stderr).
fn agora_load(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_agora-load"))
        .args(args)
        .output()
        .expect("run agora-load");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn help_lists_the_scenarios() {
    let (code, stdout, _) = agora_load(&["--help"]);
    assert_eq!(code, Some(0));
    for scenario in [
        "browse",
        "cart",
        "stock",
        "checkout",
        "flash-sale",
        "websocket",
        "mixed",
    ] {
        assert!(stdout.contains(scenario), "{scenario} in:\n{stdout}");
    }
}

#[test]
fn another_machine_is_refused_before_any_request() {
    let (code, _, stderr) =
        agora_load(&["--scenario", "browse", "--target", "http://192.0.2.1:80"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--allow-remote"), "{stderr}");
}

#[test]
fn options_out_of_range_are_refused() {
    let (code, _, stderr) = agora_load(&["--scenario", "browse", "--duration", "0"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--duration"), "{stderr}");
}

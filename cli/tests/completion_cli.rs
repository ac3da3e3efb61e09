//! The `completion` subcommand prints a script naming every subcommand, and
//! rejects an unknown shell with the usage exit code.

use std::process::Command;

fn kubectl_bpc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kubectl-bpc"))
}

#[test]
fn completion_bash_script_lists_every_subcommand() {
    let out = kubectl_bpc().args(["completion", "bash"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(script.contains("complete -F"), "not a bash completion script");
    for sub in ["status", "verify", "sink", "map", "completion"] {
        assert!(script.contains(sub), "bash completion misses {sub}");
    }
}

#[test]
fn completion_for_an_unknown_shell_is_a_usage_error() {
    let out = kubectl_bpc().args(["completion", "cmd.exe"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

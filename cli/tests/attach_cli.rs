//! attach/detach usage errors end with exit code 2 and a message naming the
//! problem, before any cluster is contacted (the kubeconfig given does not
//! exist, so reaching it would be a different error).

use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-bpc"))
        .args(args)
        .args(["--kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .unwrap();
    assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn usage_errors_exit_2_before_contacting_the_cluster() {
    for (args, needle) in [
        (vec!["attach", "--collector", "198.18.0.2"], "name at least one workload"),
        (vec!["attach", "rs/x", "--collector", "198.18.0.2"], "unsupported workload kind 'rs'"),
        (vec!["attach", "job/x", "--collector", "198.18.0.2"], "kubectl bpc capture job/x"),
        (vec!["detach", "pod/x"], "kubectl bpc capture pod/x"),
        (vec!["attach", "web", "--collector", "198.18.0.2", "-l", "app=web"], "not both"),
        (vec!["attach", "web", "--collector", "198.18.0.2", "-A"], "cannot be used with workload names"),
        (vec!["attach", "web", "--collector", "198.18.0.2", "--filter", "tcp prot 1"], "does not compile"),
        (vec!["attach", "web", "--collector", "a,b,c,d,e"], "at most 4"),
        (vec!["attach", "web"], "--collector"),
        (vec!["detach"], "name at least one workload"),
        (vec!["detach", "web", "--all"], "not both"),
    ] {
        let (code, stderr) = run(&args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("cannot read kubeconfig"),
            "{args:?} reached the cluster connection: {stderr}"
        );
    }
}

#[test]
fn a_missing_kubeconfig_is_a_configuration_error_naming_the_file() {
    let (code, stderr) = run(&["attach", "web", "--collector", "198.18.0.2"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("/nonexistent/kubeconfig") && stderr.contains("--kubeconfig"), "{stderr}");
}

#[test]
fn every_command_help_shows_an_example() {
    for cmd in ["attach", "detach", "inject", "uninject", "status", "verify", "sink", "map", "completion"] {
        let out = Command::new(env!("CARGO_BIN_EXE_kubectl-bpc")).args([cmd, "--help"]).output().unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "{cmd}");
        assert!(help.contains("Example"), "{cmd} --help has no example:\n{help}");
    }
}

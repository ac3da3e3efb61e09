//! Configuration mistakes end with exit code 2 and a message that names the
//! setting and the fix, before any packet is touched.

mod support;

use std::process::{Command, Output};

use support::*;

fn agent(args: &[&str]) -> Output {
    Command::new(AGENT).args(args).env("RUST_LOG", "info").output().expect("run agent")
}

fn assert_exit_2(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}: {stderr}");
    }
}

#[test]
fn an_invalid_filter_exits_2_with_libpcaps_message() {
    let out = agent(&["--collector", "127.0.0.1", "--interface", "lo", "--filter", "tcp prot 80"]);
    assert_exit_2(&out, &["invalid --filter (BPC_FILTER)", "tcp prot 80", "syntax error"]);
}

#[test]
fn no_collector_exits_2_naming_bpc_collector() {
    let out = Command::new(AGENT).env_remove("BPC_COLLECTOR").output().unwrap();
    assert_exit_2(&out, &["--collector", "BPC_COLLECTOR"]);
}

#[test]
fn an_unknown_interface_exits_2_listing_the_ones_that_exist() {
    // The endpoint binds before the interface is chosen: in a namespace of its
    // own no other process on the machine can hold the port first.
    let pod = Netns::new("pod", "noif");
    let out = pod
        .command(AGENT)
        .args(["--collector", "127.0.0.1", "--interface", "bpcnosuch0"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert_exit_2(&out, &["bpcnosuch0", "lo", "BPC_INTERFACE"]);
}

#[test]
fn a_bad_value_from_the_environment_exits_2() {
    let out =
        Command::new(AGENT).env("BPC_COLLECTOR", "127.0.0.1").env("BPC_OVERSIZE", "drop").output().unwrap();
    assert_exit_2(&out, &["drop", "segment"]);
    let out = Command::new(AGENT)
        .env("BPC_COLLECTOR", "127.0.0.1")
        .env("BPC_GRE_PROFILE", "netis")
        .env("BPC_KEY", "0xffffffff")
        .output()
        .unwrap();
    assert_exit_2(&out, &["28-bit"]);
}

#[test]
fn more_than_four_collectors_in_bpc_collector_exits_2() {
    let out = Command::new(AGENT)
        .env("BPC_COLLECTOR", "198.18.0.1,198.18.0.2,198.18.0.3,198.18.0.4,collector.svc")
        .output()
        .unwrap();
    assert_exit_2(&out, &["5 collectors given, at most 4"]);
}

#[test]
fn a_busy_metrics_port_exits_2_naming_the_setting() {
    let pod = Netns::new("pod", "port");
    let ns = pod.name.clone();
    let _busy = std::thread::spawn(move || {
        enter(&ns);
        std::net::TcpListener::bind("127.0.0.1:9469").expect("bind in the pod namespace")
    })
    .join()
    .unwrap();
    let out = pod
        .command(AGENT)
        .args(["--collector", "127.0.0.1", "--interface", "lo", "--metrics-addr", "127.0.0.1:9469"])
        .output()
        .unwrap();
    assert_exit_2(&out, &["--metrics-addr (BPC_METRICS_ADDR) 127.0.0.1:9469", "in use"]);
}

#[test]
fn list_interfaces_shows_the_default_route_interface() {
    let t = Topology::new("ls");
    t.default_route_via_client();
    let out = t.pod.command(AGENT).arg("--list-interfaces").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with(&t.pod_if)).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("(default capture interface)") && line.contains(POD_IP), "{text}");
    assert!(text.lines().any(|l| l.starts_with(&t.pod_col_if) && !l.contains("default")), "{text}");
}

#[test]
fn a_buffer_out_of_bounds_exits_2_naming_the_flag() {
    let out = agent(&["--collector", "127.0.0.1", "--interface", "lo", "--buffer", "0"]);
    assert_exit_2(&out, &["--buffer (BPC_BUFFER) 0 MiB", "2..=1024"]);
    let out =
        Command::new(AGENT).env("BPC_COLLECTOR", "127.0.0.1").env("BPC_BUFFER", "4096").output().unwrap();
    assert_exit_2(&out, &["--buffer (BPC_BUFFER) 4096 MiB"]);
}

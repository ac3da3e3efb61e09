//! The output policy of the binary: a reader that closes standard output
//! early (`| head`) ends the command quietly and successfully.

use std::io::Write;
use std::process::{Command, Stdio};

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
";

#[test]
fn a_closed_output_pipe_ends_inject_quietly_with_exit_0() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-bpc"))
        .args(["inject", "-f", "-", "--collector", "198.18.0.2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the plugin writes: inject reads all of
    // its input first, so the write certainly meets a closed pipe.
    drop(child.stdout.take());
    child.stdin.take().unwrap().write_all(DEPLOYMENT.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("error") && !stderr.contains("panicked"), "{stderr}");
}

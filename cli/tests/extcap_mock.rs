//! The extcap's capture against the shared mock API server (tests/mock): a
//! refusal reaches Wireshark as one line on stderr, before any pipe is
//! written or any container added.

use std::ffi::OsString;

use kubectl_bpc::extcap::protocol::{self, Request};
use serde_json::json;

mod mock;
use mock::*;

fn request(target: &str) -> protocol::CaptureRequest {
    let argv: Vec<OsString> =
        ["kubectl-bpc", "--capture", "--extcap-interface", "bpc", "--fifo", "/nonexistent/fifo"]
            .into_iter()
            .chain(["--namespace", "shop", "--target", target, "--image", "bpc-agent:test"])
            .map(Into::into)
            .collect();
    match Request::parse(&argv).unwrap() {
        Request::Capture(c) => *c,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_restricted_namespace_reaches_wireshark_as_one_line_naming_the_level_and_nothing_is_written() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "uid-1"},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]},
        "status": {"phase": "Running", "podIP": "198.19.1.5"}});
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "shop", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}});
    let nodes = json!({"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": []});
    // Reads only: no dry run, no patch (the script fails on any other request).
    let script = vec![
        ex("GET", "/api/v1/namespaces/shop/pods/web-1", &[], pod),
        ex("GET", "/api/v1/namespaces/shop", &[], namespace),
        ex("GET", "/api/v1/nodes", &[], nodes),
    ];
    let req = request("pod/web-1");
    let (out, seen) =
        with_server(script, |kube| async move { kubectl_bpc::extcap::capture::run(&req, &kube).await }).await;
    let line = protocol::error_line(&out.unwrap_err());
    assert!(line.starts_with("kubectl-bpc: ") && !line.contains('\n'), "{line}");
    assert!(line.contains("restricted"), "{line}");
    assert_eq!(seen.len(), 3, "only reads");
}

//! The mock API server shared by the mock tests (the `ApiServerVerifier`
//! pattern of kube-rs's controller-rs): a test plays the exact requests it
//! expects, in order, answers them, and fails on a missing call (timeout) or
//! an unexpected one.

#![allow(dead_code)]

use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use kubectl_bpc::kube_context::Kube;
use serde_json::{Value, json};

pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One request the test expects and the answer it gets.
#[derive(Clone)]
pub struct Exchange {
    pub method: &'static str,
    pub path: &'static str,
    pub query: &'static [&'static str],
    pub status: u16,
    pub body: Value,
}

pub fn ex(method: &'static str, path: &'static str, query: &'static [&'static str], body: Value) -> Exchange {
    Exchange { method, path, query, status: 200, body }
}

pub fn err(method: &'static str, path: &'static str, code: u16, reason: &str, message: &str) -> Exchange {
    Exchange {
        method,
        path,
        query: &[],
        status: code,
        body: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}),
    }
}

/// A request as the mock server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

pub async fn verify(mut handle: Handle, script: Vec<Exchange>) -> Vec<Seen> {
    let mut seen = Vec::new();
    for expected in script {
        let (req, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {} {}", expected.method, expected.path))
            .expect("client gone before the expected request");
        let s = Seen {
            method: req.method().to_string(),
            path: req.uri().path().to_owned(),
            query: req.uri().query().unwrap_or_default().to_owned(),
            content_type: req
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
            body: {
                let bytes = req.into_body().collect_bytes().await.unwrap();
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            },
        };
        assert_eq!(
            (s.method.as_str(), s.path.as_str()),
            (expected.method, expected.path),
            "request {}",
            seen.len()
        );
        for q in expected.query {
            assert!(
                s.query.split('&').any(|p| p == *q),
                "{} {}: query {:?} lacks {q}",
                s.method,
                s.path,
                s.query
            );
        }
        let response = Response::builder()
            .status(expected.status)
            .header("warning", "299 - \"mock warning\"")
            .body(Body::from(expected.body.to_string().into_bytes()))
            .unwrap();
        send.send_response(response);
        seen.push(s);
    }
    if let Ok(Some((req, _))) = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await {
        panic!("unexpected request {} {}", req.method(), req.uri());
    }
    seen
}

/// Runs `f` against a mock API server playing `script`; returns what `f`
/// returned and the requests seen.
pub async fn with_server<T, F, Fut>(script: Vec<Exchange>, f: F) -> (T, Vec<Seen>)
where
    F: FnOnce(Kube) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(verify(handle, script));
    let kube = Kube::new(kube::Client::new(svc, "shop"), "shop");
    let out = tokio::time::timeout(Duration::from_secs(20), f(kube)).await.expect("command hung");
    let seen = server.await.expect("mock API server assertion failed");
    (out, seen)
}

//! The mock API server shared by the mock tests (the `ApiServerVerifier`
//! pattern of kube-rs's controller-rs): a test plays the exact requests it
//! expects, in order, answers them, and fails on a missing call (timeout) or
//! an unexpected one.
//!
//! A script is a list of [`Exchange`]s, answered in order. Two escapes for
//! clients that do not ask in a fixed order: [`any_order`] turns a run of
//! exchanges into a set (requests in flight together, watchers), and
//! [`Exchange::repeatable`] marks one that answers zero or more matching
//! requests (polling loops, re-watches).

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use kubectl_bpc::kube_context::Kube;
use serde_json::{Value, json};

pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// What the mock server answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A JSON body.
    Json(Value),
    /// A body sent as is: a pod log, a fixture file, a watch stream.
    Text(String),
    /// No answer at all: the request stays pending until the client gives
    /// up (a quiet watch).
    Hang,
}

/// One request the test expects and the answer it gets.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub method: &'static str,
    pub path: String,
    /// Query parameters the request must carry (others are allowed unless
    /// `exact_query`).
    pub query: &'static [&'static str],
    /// The request carries exactly `query`, no other parameter.
    pub exact_query: bool,
    /// A watch (`watch=true`); a plain exchange never matches a watch.
    pub watch: bool,
    pub status: u16,
    pub reply: Reply,
    /// Answers zero or more matching requests instead of exactly one.
    pub repeat: bool,
    /// Consecutive exchanges of the same nonzero group match in any order.
    pub group: u32,
}

impl Exchange {
    /// Answers zero or more matching requests (a poll, a re-watch).
    pub fn repeatable(mut self) -> Self {
        self.repeat = true;
        self
    }

    /// The request must carry exactly the expected query parameters.
    pub fn exact_query(mut self) -> Self {
        self.exact_query = true;
        self
    }

    fn matches(&self, s: &Seen) -> bool {
        let params: Vec<&str> = s.query.split('&').filter(|p| !p.is_empty()).collect();
        s.method == self.method
            && s.path == self.path
            && params.contains(&"watch=true") == self.watch
            && self.query.iter().all(|q| params.contains(q))
            && (!self.exact_query || params.iter().all(|p| self.query.contains(p)))
    }

    fn describe(&self) -> String {
        let watch = if self.watch { " (watch)" } else { "" };
        format!("{} {} {:?}{watch}", self.method, self.path, self.query)
    }
}

fn exchange(
    method: &'static str,
    path: impl Into<String>,
    query: &'static [&'static str],
    reply: Reply,
) -> Exchange {
    Exchange {
        method,
        path: path.into(),
        query,
        exact_query: false,
        watch: false,
        status: 200,
        reply,
        repeat: false,
        group: 0,
    }
}

/// A request answered with a JSON body.
pub fn ex(
    method: &'static str,
    path: impl Into<String>,
    query: &'static [&'static str],
    body: Value,
) -> Exchange {
    exchange(method, path, query, Reply::Json(body))
}

/// A request answered with a text body (a log, a fixture as is).
pub fn text(
    method: &'static str,
    path: impl Into<String>,
    query: &'static [&'static str],
    body: impl Into<String>,
) -> Exchange {
    exchange(method, path, query, Reply::Text(body.into()))
}

/// A request answered with a Kubernetes `Status` failure.
pub fn err(
    method: &'static str,
    path: impl Into<String>,
    code: u16,
    reason: &str,
    message: &str,
) -> Exchange {
    Exchange {
        status: code,
        ..ex(
            method,
            path,
            &[],
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code}),
        )
    }
}

/// A watch (GET with `watch=true`) answered with `events`, one JSON watch
/// event a line, after which the stream ends.
pub fn watch(path: impl Into<String>, events: Vec<Value>) -> Exchange {
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    Exchange { watch: true, ..text("GET", path, &[], body) }
}

/// A watch left pending, as a quiet API server would.
pub fn quiet_watch(path: impl Into<String>) -> Exchange {
    Exchange { watch: true, ..exchange("GET", path, &[], Reply::Hang) }
}

/// Lets `exchanges` match in any order (requests in flight together).
pub fn any_order(exchanges: Vec<Exchange>) -> Vec<Exchange> {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let group = NEXT.fetch_add(1, Ordering::Relaxed);
    exchanges.into_iter().map(|e| Exchange { group, ..e }).collect()
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

/// The script cut into steps: a lone exchange, or a run of one group.
fn steps(script: Vec<Exchange>) -> Vec<Vec<Exchange>> {
    let mut steps: Vec<Vec<Exchange>> = Vec::new();
    for e in script {
        match steps.last_mut() {
            Some(last) if e.group != 0 && last[0].group == e.group => last.push(e),
            _ => steps.push(vec![e]),
        }
    }
    steps
}

pub async fn verify(mut handle: Handle, script: Vec<Exchange>) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut pending = Vec::new();
    let mut steps = steps(script).into_iter();
    // The current step, each exchange with how often it was answered.
    let mut current: Vec<(Exchange, usize)> = Vec::new();
    let required_left = |current: &[(Exchange, usize)]| -> Vec<String> {
        current.iter().filter(|(e, n)| !e.repeat && *n == 0).map(|(e, _)| e.describe()).collect()
    };
    loop {
        let mut wanted = required_left(&current);
        if wanted.is_empty()
            && let Some(next) = steps.as_slice().first()
        {
            wanted = next.iter().map(Exchange::describe).collect();
        }
        let next = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
        let (req, send) = match next {
            Ok(Some(r)) => r,
            _ if wanted.is_empty() => break,
            Err(_) => panic!("timed out waiting for {wanted:?}"),
            Ok(None) => panic!("client gone before the expected request {wanted:?}"),
        };
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
        // An exchange not yet answered first, then a repeatable one; the
        // next step once the current one has nothing left it must answer.
        let found = loop {
            let pick = current
                .iter()
                .position(|(e, n)| !e.repeat && *n == 0 && e.matches(&s))
                .or_else(|| current.iter().position(|(e, _)| e.repeat && e.matches(&s)));
            if let Some(i) = pick {
                break i;
            }
            let left = required_left(&current);
            assert!(
                left.is_empty(),
                "request {}: {} {}?{} while expecting {left:?}",
                seen.len(),
                s.method,
                s.path,
                s.query
            );
            match steps.next() {
                Some(step) => current = step.into_iter().map(|e| (e, 0)).collect(),
                None => panic!("unexpected request {} {}?{}", s.method, s.path, s.query),
            }
        };
        current[found].1 += 1;
        let expected = &current[found].0;
        let body = match &expected.reply {
            Reply::Json(v) => v.to_string(),
            Reply::Text(t) => t.clone(),
            Reply::Hang => {
                pending.push(send);
                seen.push(s);
                continue;
            }
        };
        let response = Response::builder()
            .status(expected.status)
            .header("warning", "299 - \"mock warning\"")
            .body(Body::from(body.into_bytes()))
            .unwrap();
        send.send_response(response);
        seen.push(s);
    }
    drop(pending);
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

//! The tiny HTTP/1.1 endpoint on `--metrics-addr`: `/metrics`, `/stats`,
//! `/healthz`. One std thread, one request per connection: it is scraped
//! every few seconds, no need for an async runtime in a sidecar.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::stats::Stats;

/// Requests larger than this are refused (ours are a few hundred bytes).
const MAX_REQUEST: usize = 8192;

/// A response: status line, content type, body.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    /// e.g. `200 OK`.
    pub status: &'static str,
    /// MIME type.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

/// Answers one request line (`GET /stats HTTP/1.1`).
pub fn respond(request_line: &str, stats: &Stats, now: Instant) -> Response {
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    const JSON: &str = "application/json";
    if method != "GET" && method != "HEAD" {
        return Response {
            status: "405 Method Not Allowed",
            content_type: "text/plain",
            body: "GET only\n".into(),
        };
    }
    match path {
        "/metrics" => Response {
            status: "200 OK",
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: stats.prometheus(now),
        },
        "/stats" => Response {
            status: "200 OK",
            content_type: JSON,
            body: serde_json::to_string(&stats.snapshot(now)).unwrap_or_default() + "\n",
        },
        "/healthz" => {
            let health = stats.health(now);
            Response {
                status: if health.ok { "200 OK" } else { "503 Service Unavailable" },
                content_type: JSON,
                body: serde_json::to_string(&health).unwrap_or_default() + "\n",
            }
        }
        "/" => Response {
            status: "200 OK",
            content_type: "text/plain",
            body: "bpc-agent: /metrics /stats /healthz\n".into(),
        },
        _ => Response { status: "404 Not Found", content_type: "text/plain", body: "not found\n".into() },
    }
}

fn handle(mut stream: TcpStream, stats: &Stats) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0u8; MAX_REQUEST];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && !buf[..len].windows(2).any(|w| w == b"\n\n") {
        if len == buf.len() {
            break;
        }
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let text = String::from_utf8_lossy(&buf[..len]);
    let line = text.lines().next().unwrap_or("");
    let response = respond(line, stats, Instant::now());
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !line.starts_with("HEAD ") {
        stream.write_all(response.body.as_bytes())?;
    }
    stream.flush()
}

/// Serves on `listener` from a background thread until the process exits.
pub fn spawn(listener: TcpListener, stats: Arc<Stats>) -> std::io::Result<()> {
    std::thread::Builder::new().name("bpc-http".into()).spawn(move || {
        for stream in listener.incoming() {
            match stream {
                Ok(s) => {
                    if let Err(e) = handle(s, &stats) {
                        debug!(error = %e, "metrics request failed");
                    }
                }
                Err(e) => {
                    debug!(error = %e, "accept failed");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Identity;

    fn stats() -> Stats {
        let id = Identity {
            key: "0x00000001".into(),
            workload: None,
            interface: "lo".into(),
            profile: "standard".into(),
            oversize: "segment".into(),
        };
        Stats::new(id, String::new(), &["198.18.0.2".into()])
    }

    #[test]
    fn routes_answer_with_their_content_types() {
        let s = stats();
        let now = Instant::now();
        assert_eq!(respond("GET /stats HTTP/1.1", &s, now).content_type, "application/json");
        assert!(respond("GET /metrics HTTP/1.1", &s, now).body.contains("bpc_agent_info"));
        assert_eq!(respond("GET /nope HTTP/1.1", &s, now).status, "404 Not Found");
        assert_eq!(respond("POST /stats HTTP/1.1", &s, now).status, "405 Method Not Allowed");
    }

    #[test]
    fn healthz_is_503_with_a_json_reason_before_capture_runs() {
        let s = stats();
        let r = respond("GET /healthz HTTP/1.1", &s, Instant::now());
        assert_eq!(r.status, "503 Service Unavailable");
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["ok"], false);
        assert!(v["reason"].as_str().unwrap().contains("capture"));
    }

    #[test]
    fn a_real_connection_gets_a_complete_http_response() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        spawn(listener, Arc::new(stats())).unwrap();
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["collectors"][0]["host"], "198.18.0.2");
    }
}

//! The agent's HTTP/1.1 endpoint on `--metrics-addr`: `/metrics`, `/stats`,
//! `/healthz`, and the client side of `bpc-agent --check-health`.
//!
//! Any pod that can reach the pod IP can connect, so the endpoint must keep
//! answering the kubelet's probe and Prometheus while port scanners leave
//! connections idle and slow clients dribble bytes. One std thread runs a
//! poll(2) loop over nonblocking sockets:
//!
//! - every connection has [`DEADLINE`] from accept to read its request and
//!   write the whole answer, however the client paces its bytes; then it is
//!   closed (counted `timeout`);
//! - at most [`MAX_CONNECTIONS`] are open; accepting one more closes the
//!   oldest (counted `evicted`), so a crowd of idle sockets cannot lock the
//!   probe out: it is always the newest;
//! - a request is read into a fixed buffer of [`MAX_REQUEST`] bytes and parsed
//!   by [`parse`], a pure function of those bytes (proptested): a malformed
//!   request line or header gets 400 as soon as it is seen, a head that does
//!   not fit gets 414/431, both closed at once.
//!
//! No async runtime: a dozen scrapes a minute do not pay for one, and a
//! poll loop over at most 65 descriptors costs nothing while idle (it sleeps
//! until a socket is ready or the earliest deadline).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::debug;

mod request;

pub use request::{Parsed, Refusal, parse};

use crate::stats::{Health, Stats};

/// Bytes of request head a connection may send (ours are a few hundred).
pub const MAX_REQUEST: usize = 8192;
/// Connections served at once; one more evicts the oldest.
pub const MAX_CONNECTIONS: usize = 64;
/// From accept to the last byte of the answer. Below the kubelet's default
/// probe timeout (1 s) would be too tight for a scrape over a busy network;
/// long enough for any honest client, short enough that a slow one holds its
/// slot for 2 s only.
pub const DEADLINE: Duration = Duration::from_secs(2);
/// Connections accepted per loop turn, so a connect flood cannot starve the
/// connections already open.
const ACCEPT_BURST: usize = 16;

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

impl Response {
    fn text(status: &'static str, body: &str) -> Response {
        Response { status, content_type: "text/plain", body: body.to_owned() }
    }

    fn health(health: &Health) -> Response {
        Response {
            status: if health.ok { "200 OK" } else { "503 Service Unavailable" },
            content_type: "application/json",
            body: serde_json::to_string(health).unwrap_or_default() + "\n",
        }
    }

    /// The bytes on the wire; `head_only` for HEAD (length of the body, no body).
    pub fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let allow = if self.status.starts_with("405") { "Allow: GET, HEAD\r\n" } else { "" };
        let mut out = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if !head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

/// Answers a parsed request.
pub fn respond(method: &str, path: &str, stats: &Stats, now: Instant) -> Response {
    const JSON: &str = "application/json";
    if method != "GET" && method != "HEAD" {
        return Response::text("405 Method Not Allowed", "GET only\n");
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
        "/healthz" => Response::health(&stats.health(now)),
        "/livez" => Response::health(&stats.liveness(now)),
        "/startupz" => Response::health(&stats.startup(now)),
        "/" => Response::text("200 OK", "bpc-agent: /metrics /stats /healthz /livez /startupz\n"),
        _ => Response::text("404 Not Found", "not found\n"),
    }
}

/// How a connection ended, as counted in `bpc_agent_http_connections_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A well-formed request was answered (any status, 404 and 405 included).
    Served,
    /// The deadline passed before the answer was written.
    Timeout,
    /// Malformed or oversize: 400/414/431 and closed.
    BadRequest,
    /// Closed to make room for a newer connection.
    Evicted,
    /// The client went away before a complete request (or mid-answer).
    Closed,
}

fn count(stats: &Stats, outcome: Outcome) {
    let h = &stats.http;
    let counter = match outcome {
        Outcome::Served => &h.served,
        Outcome::Timeout => &h.timeout,
        Outcome::BadRequest => &h.bad_request,
        Outcome::Evicted => &h.evicted,
        Outcome::Closed => &h.closed,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

enum Phase {
    /// Reading the request head into the buffer.
    Reading,
    /// Writing the answer; `outcome` is counted once it is all out.
    Writing { out: Vec<u8>, sent: usize, outcome: Outcome },
    /// Answer written and our side shut down: discarding what the client
    /// still sends until it closes, so that closing with unread bytes does
    /// not reset the connection before the client has read the answer.
    Draining,
}

struct Conn {
    stream: TcpStream,
    accepted: Instant,
    buf: Box<[u8]>,
    len: usize,
    phase: Phase,
}

impl Conn {
    fn new(stream: TcpStream, accepted: Instant) -> Conn {
        Conn { stream, accepted, buf: vec![0; MAX_REQUEST].into_boxed_slice(), len: 0, phase: Phase::Reading }
    }

    fn deadline(&self) -> Instant {
        self.accepted + DEADLINE
    }

    fn events(&self) -> libc::c_short {
        match self.phase {
            Phase::Writing { .. } => libc::POLLOUT,
            Phase::Reading | Phase::Draining => libc::POLLIN,
        }
    }

    /// Ends the connection; `outcome` is counted unless the answer was
    /// already written (draining).
    fn close(self, stats: &Stats, outcome: Outcome) {
        if !matches!(self.phase, Phase::Draining) {
            count(stats, outcome);
        }
    }

    /// The deadline passed: a best-effort 408 to a client still sending, then close.
    fn expire(mut self, stats: &Stats) {
        if matches!(self.phase, Phase::Reading) {
            let _ = self.stream.write(&Response::text("408 Request Timeout", "").to_bytes(false));
        }
        self.close(stats, Outcome::Timeout);
    }

    /// Does what the socket is ready for. `None`: the connection is done
    /// (its outcome counted).
    fn advance(mut self, stats: &Stats) -> Option<Conn> {
        loop {
            match &mut self.phase {
                Phase::Reading => {
                    if self.len == self.buf.len() {
                        // parse() refused a full buffer already; not reached.
                        self.close(stats, Outcome::BadRequest);
                        return None;
                    }
                    match self.stream.read(&mut self.buf[self.len..]) {
                        Ok(0) => {
                            self.close(stats, Outcome::Closed);
                            return None;
                        }
                        Ok(n) => self.len += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(self),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => {
                            self.close(stats, Outcome::Closed);
                            return None;
                        }
                    }
                    let full = self.len == self.buf.len();
                    let (out, outcome) = match parse(&self.buf[..self.len], full) {
                        Parsed::Incomplete => continue,
                        Parsed::Request { method, path } => (
                            respond(method, path, stats, Instant::now()).to_bytes(method == "HEAD"),
                            Outcome::Served,
                        ),
                        Parsed::Refused(r) => (r.response().to_bytes(false), Outcome::BadRequest),
                    };
                    self.phase = Phase::Writing { out, sent: 0, outcome };
                }
                Phase::Writing { out, sent, outcome } => {
                    match self.stream.write(&out[*sent..]) {
                        Ok(n) => *sent += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(self),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => {
                            self.close(stats, Outcome::Closed);
                            return None;
                        }
                    }
                    if *sent == out.len() {
                        count(stats, *outcome);
                        let _ = self.stream.shutdown(Shutdown::Write);
                        self.phase = Phase::Draining;
                    }
                }
                Phase::Draining => return if self.drain_would_block() { Some(self) } else { None },
            }
        }
    }

    /// Reads and discards until the socket has nothing more; true while the
    /// client keeps the connection open.
    fn drain_would_block(&mut self) -> bool {
        loop {
            match self.stream.read(&mut self.buf) {
                Ok(0) => return false,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }
}

/// Milliseconds poll(2) may sleep before `deadline`, rounded up so the
/// deadline has passed when it wakes.
fn poll_timeout(now: Instant, deadline: Option<Instant>) -> libc::c_int {
    match deadline {
        None => -1,
        Some(d) => {
            let left = d.saturating_duration_since(now);
            let ms = left.as_micros().div_ceil(1000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}

/// The connection to close when one more must be accepted: one whose answer
/// is already written if any (it costs the client nothing), else the oldest.
fn victim(conns: &[Conn]) -> usize {
    conns.iter().position(|c| matches!(c.phase, Phase::Draining)).unwrap_or(0)
}

/// The poll loop; runs until the process exits.
fn serve(listener: TcpListener, stats: &Stats) {
    let mut conns: Vec<Conn> = Vec::with_capacity(MAX_CONNECTIONS);
    let mut fds: Vec<libc::pollfd> = Vec::with_capacity(MAX_CONNECTIONS + 1);
    loop {
        let now = Instant::now();
        // Connections are kept in accept order, so deadlines are in order too.
        while conns.first().is_some_and(|c| c.deadline() <= now) {
            conns.remove(0).expire(stats);
        }
        fds.clear();
        fds.push(libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        fds.extend(conns.iter().map(|c| libc::pollfd {
            fd: c.stream.as_raw_fd(),
            events: c.events(),
            revents: 0,
        }));
        let timeout = poll_timeout(now, conns.first().map(Conn::deadline));
        // SAFETY: fds is a valid array of fds.len() pollfd structs.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                debug!(error = %err, "poll failed");
                std::thread::sleep(Duration::from_millis(10));
            }
            continue;
        }
        let ready: Vec<bool> = fds[1..].iter().map(|p| p.revents != 0).collect();
        let mut kept = Vec::with_capacity(MAX_CONNECTIONS);
        for (conn, ready) in conns.drain(..).zip(ready) {
            if ready {
                kept.extend(conn.advance(stats));
            } else {
                kept.push(conn);
            }
        }
        conns = kept;
        if fds[0].revents & libc::POLLIN != 0 {
            accept_some(&listener, &mut conns, stats);
        }
    }
}

fn accept_some(listener: &TcpListener, conns: &mut Vec<Conn>, stats: &Stats) {
    for _ in 0..ACCEPT_BURST {
        match listener.accept() {
            Ok((stream, _)) => {
                if stream.set_nonblocking(true).is_err() {
                    count(stats, Outcome::Closed);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                if conns.len() >= MAX_CONNECTIONS {
                    conns.remove(victim(conns)).close(stats, Outcome::Evicted);
                }
                conns.push(Conn::new(stream, Instant::now()));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // EMFILE and the like: free a slot so the next accept can succeed.
                debug!(error = %e, "accept failed");
                if !conns.is_empty() {
                    conns.remove(0).close(stats, Outcome::Evicted);
                } else {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return;
            }
        }
    }
}

/// Serves on `listener` from a background thread until the process exits.
pub fn spawn(listener: TcpListener, stats: Arc<Stats>) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    std::thread::Builder::new().name("bpc-http".into()).spawn(move || serve(listener, &stats))?;
    Ok(())
}

/// Where `bpc-agent --check-health` dials for an endpoint bound to `bind`:
/// the loopback address of the same family when bound to all addresses.
pub fn probe_address(bind: SocketAddr) -> SocketAddr {
    match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, bind.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, bind.port()).into(),
        _ => bind,
    }
}

/// `GET path` (`/livez`, the liveness check; `/startupz`, the startup check)
/// on `addr` within `timeout` overall: `Ok(body)` for 200, `Err(why)`
/// otherwise (503 with the agent's reason, no answer, ...).
pub fn check_health(addr: SocketAddr, path: &str, timeout: Duration) -> Result<String, String> {
    let until = Instant::now() + timeout;
    let left = || until.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let mut stream =
        TcpStream::connect_timeout(&addr, left()).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream.set_write_timeout(Some(left())).map_err(|e| e.to_string())?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| format!("cannot send to {addr}: {e}"))?;
    let mut answer = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        stream.set_read_timeout(Some(left())).map_err(|e| e.to_string())?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) if answer.len() + n <= 64 * 1024 => answer.extend_from_slice(&chunk[..n]),
            Ok(_) => return Err(format!("answer from {addr} too long")),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("no complete answer from {addr} within {timeout:?}: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or_default();
    if status.split(' ').nth(1) == Some("200") {
        Ok(body.trim().to_owned())
    } else {
        Err(format!("{status}: {}", body.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Identity;

    fn stats() -> Stats {
        let id = Identity {
            key: "0x00000001".into(),
            workload: None,
            profile: bpc_contract::GreProfile::Standard,
            oversize: bpc_contract::Oversize::Segment,
        };
        Stats::new(id, String::new(), &["198.18.0.2".into()])
    }

    #[test]
    fn routes_answer_with_their_content_types() {
        let s = stats();
        let now = Instant::now();
        assert_eq!(respond("GET", "/stats", &s, now).content_type, "application/json");
        assert!(respond("GET", "/metrics", &s, now).body.contains("bpc_agent_info"));
        assert_eq!(respond("GET", "/nope", &s, now).status, "404 Not Found");
        let post = respond("POST", "/stats", &s, now);
        assert_eq!(post.status, "405 Method Not Allowed");
        assert!(String::from_utf8(post.to_bytes(false)).unwrap().contains("\r\nAllow: GET, HEAD\r\n"));
    }

    #[test]
    fn healthz_is_503_with_a_json_reason_before_capture_runs() {
        let s = stats();
        let r = respond("GET", "/healthz", &s, Instant::now());
        assert_eq!(r.status, "503 Service Unavailable");
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["ok"], false);
        assert!(v["reason"].as_str().unwrap().contains("capture"));
    }

    #[test]
    fn head_responses_carry_the_length_but_no_body() {
        let r = Response::text("200 OK", "hello\n");
        let text = String::from_utf8(r.to_bytes(true)).unwrap();
        assert!(text.ends_with("Content-Length: 6\r\nConnection: close\r\n\r\n"), "{text:?}");
    }

    #[test]
    fn probe_address_dials_loopback_for_an_unspecified_bind() {
        assert_eq!(probe_address("0.0.0.0:9469".parse().unwrap()), "127.0.0.1:9469".parse().unwrap());
        assert_eq!(probe_address("[::]:9469".parse().unwrap()), "[::1]:9469".parse().unwrap());
        assert_eq!(probe_address("127.0.0.1:80".parse().unwrap()), "127.0.0.1:80".parse().unwrap());
    }

    fn serve_stats() -> (SocketAddr, Arc<Stats>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let s = Arc::new(stats());
        spawn(listener, s.clone()).unwrap();
        (addr, s)
    }

    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(request).unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn a_real_connection_gets_a_complete_http_response() {
        let (addr, s) = serve_stats();
        let out = exchange(addr, b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["collectors"][0]["host"], "198.18.0.2");
        assert!(exchange(addr, b"POST / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
        assert!(exchange(addr, b"BREW /pot HTCPCP/1.0\r\n\r\n").starts_with("HTTP/1.1 400 "));
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_REQUEST + 100, b'x');
        assert!(exchange(addr, &big).starts_with("HTTP/1.1 431 "));
        // Counted once each, when the answer is out (the client saw it first).
        wait(|| {
            s.http.served.load(Ordering::Relaxed) == 2 && s.http.bad_request.load(Ordering::Relaxed) == 2
        });
    }

    fn wait(mut done: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < until, "condition not reached");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_crowd_of_idle_connections_evicts_the_oldest_and_never_blocks_a_probe() {
        let (addr, s) = serve_stats();
        let idle: Vec<TcpStream> =
            (0..MAX_CONNECTIONS + 10).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let t = Instant::now();
        let out = exchange(addr, b"GET /healthz HTTP/1.1\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 503 "), "{out}");
        assert!(t.elapsed() < Duration::from_millis(500), "probe took {:?}", t.elapsed());
        wait(|| s.http.evicted.load(Ordering::Relaxed) >= 11);
        // The oldest went first: the first idle socket is closed by now.
        let mut first = &idle[0];
        first.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        assert_eq!(first.read(&mut [0u8; 16]).unwrap(), 0);
    }

    #[test]
    fn check_health_reports_the_status_and_reason() {
        let (addr, s) = serve_stats();
        let e = check_health(addr, "/livez", Duration::from_secs(2)).unwrap_err();
        assert!(e.contains("503") && e.contains("capture has not started"), "{e}");
        s.capture.heartbeat.set(s.started, Instant::now());
        *s.collectors[0].resolution.lock().unwrap() =
            Some(crate::stats::Resolution { address: "198.18.0.2".parse().unwrap(), path_mtu: 1500 });
        assert!(check_health(addr, "/livez", Duration::from_secs(2)).unwrap().contains("\"ok\":true"));
        let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        assert!(
            check_health(closed, "/livez", Duration::from_secs(1)).unwrap_err().contains("cannot connect")
        );
    }
}

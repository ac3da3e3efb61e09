//! The request head parser: a pure function of the bytes read so far, so
//! that a malformed request line or header is refused as soon as it is seen
//! (proptested).

use super::Response;

/// Why a request head is refused before it is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not HTTP/1.x syntax: 400.
    BadRequest,
    /// The request line does not fit the buffer: 414.
    UriTooLong,
    /// The header section does not fit the buffer: 431.
    HeadersTooLarge,
}

impl Refusal {
    /// The answer sent before closing.
    pub fn response(self) -> Response {
        match self {
            Refusal::BadRequest => Response::text("400 Bad Request", "malformed HTTP request\n"),
            Refusal::UriTooLong => Response::text("414 URI Too Long", "request line too long\n"),
            Refusal::HeadersTooLarge => {
                Response::text("431 Request Header Fields Too Large", "request head over 8192 bytes\n")
            }
        }
    }
}

/// What the bytes received so far on a connection amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A valid prefix of a request head: read more.
    Incomplete,
    /// A complete, well-formed request head.
    Request {
        /// The method token (`GET`, `HEAD`, or any other token: routed to 405).
        method: &'a str,
        /// The target's path, without the query.
        path: &'a str,
    },
    /// Refused: answer and close.
    Refused(Refusal),
}

/// RFC 9110 `tchar`: what a method or header name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks a request line (without its line ending); `complete` is false for
/// a line still being received, whose tail may be cut anywhere.
fn request_line(line: &[u8], complete: bool) -> Result<Option<(&str, &str)>, Refusal> {
    let bad = Err(Refusal::BadRequest);
    let mut parts = line.splitn(3, |&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    if method.len() > 16 || !method.iter().copied().all(is_tchar) {
        return bad;
    }
    let Some(target) = parts.next() else {
        return if complete || method.is_empty() && !line.is_empty() { bad } else { Ok(None) };
    };
    if method.is_empty() || target.first().is_some_and(|&b| b != b'/') {
        return bad;
    }
    if !target.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return bad;
    }
    let Some(version) = parts.next() else { return if complete { bad } else { Ok(None) } };
    if target.is_empty() {
        return bad;
    }
    let versions: [&[u8]; 2] = [b"HTTP/1.1", b"HTTP/1.0"];
    if complete {
        if !versions.contains(&version) {
            return bad;
        }
    } else if !versions.iter().any(|v| v.starts_with(version)) {
        return bad;
    }
    if !complete {
        return Ok(None);
    }
    // Only tchar and visible ASCII were accepted above: valid UTF-8.
    let method = std::str::from_utf8(method).map_err(|_| Refusal::BadRequest)?;
    let target = std::str::from_utf8(target).map_err(|_| Refusal::BadRequest)?;
    let path = target.split(['?', '#']).next().unwrap_or_default();
    Ok(Some((method, path)))
}

/// Checks a header line (without its line ending), complete or still arriving.
fn header_line(line: &[u8], complete: bool) -> Result<(), Refusal> {
    // obs-fold (a continuation line) is rejected, as RFC 9112 allows.
    if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        return Err(Refusal::BadRequest);
    }
    let colon = line.iter().position(|&b| b == b':');
    let name = &line[..colon.unwrap_or(line.len())];
    if !name.iter().copied().all(is_tchar) || (colon.is_some() || complete) && name.is_empty() {
        return Err(Refusal::BadRequest);
    }
    if complete && colon.is_none() {
        return Err(Refusal::BadRequest);
    }
    let value = colon.map_or(&[][..], |c| &line[c + 1..]);
    // Field values: visible bytes, space, tab and obs-text; no other controls.
    if value.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return Err(Refusal::BadRequest);
    }
    Ok(())
}

/// Parses the bytes received so far on a connection. `full` says the buffer
/// cannot take more, so an incomplete head is refused as too large.
///
/// Lines end with CRLF or a bare LF (RFC 9112 lets a server accept LF); a CR
/// anywhere else is malformed. Empty lines before the request line are
/// skipped. The header section is checked but not kept: the routes need
/// only the method and the path.
pub fn parse(buf: &[u8], full: bool) -> Parsed<'_> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(buf.len());
    // Each leading CR must be followed by LF (a CR ending the buffer may still get it).
    let leading = &buf[..start];
    let stray_cr =
        leading.iter().enumerate().any(|(i, &b)| b == b'\r' && buf.get(i + 1).is_some_and(|&n| n != b'\n'));
    if stray_cr {
        return Parsed::Refused(Refusal::BadRequest);
    }
    let mut rest = &buf[start..];
    let mut first: Option<(&str, &str)> = None;
    loop {
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            // A line still arriving: refuse it now if it already cannot be valid.
            let partial = rest.strip_suffix(b"\r").unwrap_or(rest);
            if partial.contains(&b'\r') {
                return Parsed::Refused(Refusal::BadRequest);
            }
            let checked = match first {
                None => request_line(partial, false).map(|_| ()),
                Some(_) => header_line(partial, false),
            };
            if let Err(r) = checked {
                return Parsed::Refused(r);
            }
            if full {
                let r = if first.is_none() { Refusal::UriTooLong } else { Refusal::HeadersTooLarge };
                return Parsed::Refused(r);
            }
            return Parsed::Incomplete;
        };
        let line = &rest[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.contains(&b'\r') {
            return Parsed::Refused(Refusal::BadRequest);
        }
        rest = &rest[nl + 1..];
        match first {
            None => match request_line(line, true) {
                Ok(Some(rl)) => first = Some(rl),
                Ok(None) | Err(_) => return Parsed::Refused(Refusal::BadRequest),
            },
            Some((method, path)) if line.is_empty() => return Parsed::Request { method, path },
            Some(_) => {
                if let Err(r) = header_line(line, true) {
                    return Parsed::Refused(r);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::http::MAX_REQUEST;

    #[test]
    fn the_parser_accepts_requests_as_clients_send_them() {
        for (raw, method, path) in [
            (
                &b"GET /healthz HTTP/1.1\r\nHost: 10.0.0.1:9469\r\nUser-Agent: kube-probe/1.33\r\n\r\n"[..],
                "GET",
                "/healthz",
            ),
            (b"GET /metrics?x=1 HTTP/1.0\n\n", "GET", "/metrics"),
            (b"\r\nHEAD / HTTP/1.1\r\nAccept:*/*\r\n\r\n", "HEAD", "/"),
            (b"DELETE /stats HTTP/1.1\r\nX-Empty:\r\n\r\n", "DELETE", "/stats"),
        ] {
            assert_eq!(
                parse(raw, false),
                Parsed::Request { method, path },
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn the_parser_refuses_malformed_heads_as_soon_as_they_are_seen() {
        for raw in [
            &b"GET\r\n\r\n"[..],
            b"GET /healthz\r\n",
            b"GET healthz HTTP/1.1\r\n",
            b"GET /a b HTTP/1.1\r\n",
            b"GET /healthz HTTP/2.0\r\n",
            b"GET /healthz HTTP/1.1\rX",
            b"G\0T /",
            b"GET /\x01",
            b"GET / HTTP/1.1\r\n folded\r\n",
            b"GET / HTTP/1.1\r\nNo colon here\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n",
            b"GET / HTTP/1.1\r\nX: a\x00b",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", // a TLS ClientHello
            b" GET / HTTP/1.1\r\n",
        ] {
            assert_eq!(
                parse(raw, false),
                Parsed::Refused(Refusal::BadRequest),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        // Prefixes of good requests are only incomplete.
        for raw in [&b""[..], b"GE", b"GET /he", b"GET /healthz HTTP/1.", b"GET / HTTP/1.1\r\nHos", b"\r\n"] {
            assert_eq!(parse(raw, false), Parsed::Incomplete, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn a_head_that_fills_the_buffer_is_too_large() {
        let mut long_line = b"GET /".to_vec();
        long_line.resize(MAX_REQUEST, b'a');
        assert_eq!(parse(&long_line, true), Parsed::Refused(Refusal::UriTooLong));
        let mut many_headers = b"GET / HTTP/1.1\r\n".to_vec();
        while many_headers.len() < MAX_REQUEST {
            many_headers.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaa\r\n");
        }
        many_headers.truncate(MAX_REQUEST);
        assert_eq!(parse(&many_headers, true), Parsed::Refused(Refusal::HeadersTooLarge));
    }

    /// A well-formed request head: method, path, query, headers, line ending.
    fn request() -> impl Strategy<Value = (Vec<u8>, String, String)> {
        (
            "[A-Z]{1,10}",
            "(/[a-zA-Z0-9._~%-]{0,12}){1,4}",
            proptest::option::of("[a-z0-9=&]{0,10}"),
            proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,15}", "[ -~]{0,40}"), 0..6),
            any::<bool>(),
            1.0f64..=1.1,
        )
            .prop_map(|(method, path, query, headers, crlf, version)| {
                let eol = if crlf { "\r\n" } else { "\n" };
                let v = if version > 1.05 { "1.1" } else { "1.0" };
                let q = query.map(|q| format!("?{q}")).unwrap_or_default();
                let mut head = format!("{method} {path}{q} HTTP/{v}{eol}");
                for (name, value) in headers {
                    head.push_str(&format!("{name}:{}{eol}", value.trim_end()));
                }
                head.push_str(eol);
                (head.into_bytes(), method, path)
            })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_a_full_buffer_is_never_incomplete(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let _ = parse(&bytes, false);
            prop_assert_ne!(parse(&bytes, true), Parsed::Incomplete);
        }

        #[test]
        fn well_formed_requests_parse_and_every_prefix_is_incomplete((head, method, path) in request()) {
            prop_assert_eq!(parse(&head, false), Parsed::Request { method: &method, path: &path });
            for cut in 0..head.len() {
                prop_assert_eq!(parse(&head[..cut], false), Parsed::Incomplete, "prefix {}", cut);
            }
            // Whatever follows the head (a body, a pipelined request) does not change it.
            let mut more = head.clone();
            more.extend_from_slice(b"\x00\xffjunk");
            prop_assert_eq!(parse(&more, false), Parsed::Request { method: &method, path: &path });
        }

        #[test]
        fn a_control_byte_in_the_request_line_is_refused(
            (head, _m, _p) in request(),
            at in any::<prop::sample::Index>(),
            byte in prop_oneof![0u8..=8, 11u8..=12, 14u8..=31, Just(127u8)],
        ) {
            let line_end = head.iter().position(|&b| b == b'\r' || b == b'\n').unwrap();
            let mut bad = head.clone();
            bad[at.index(line_end)] = byte;
            prop_assert_eq!(parse(&bad, false), Parsed::Refused(Refusal::BadRequest));
        }
    }
}

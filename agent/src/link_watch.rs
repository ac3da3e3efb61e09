//! The TX ring's links looked up off the capture thread.
//!
//! Why a thread: a lookup reads `/proc/net/route`, `/proc/net/arp` and the
//! interface's sysfs entries and opens a UDP socket; measured at 190-210 µs
//! in the test VM. Done on the capture thread once a second, it held back
//! every frame captured meanwhile, about 1% of them at a pod's low rates:
//! the 99th percentile of the response times a probe measures at the
//! collector (docs/agent.md, "The timeline"). The capture thread now asks
//! for a lookup and applies the last answer; it never waits for one.

use std::net::Ipv4Addr;
use std::sync::{Arc, Condvar, Mutex};

use crate::txring::{Link, link_to};

/// Per destination, the address asked for (`None`: not for the TX ring) and its link.
pub type Answer = (Vec<Option<Ipv4Addr>>, Vec<Option<Link>>);

/// Destinations asked for, and the answer for the last ones looked up.
#[derive(Debug, Default)]
struct Shared {
    wanted: Mutex<Option<Vec<Option<Ipv4Addr>>>>,
    wake: Condvar,
    found: Mutex<Option<Answer>>,
}

/// The capture thread's handle on the lookup thread.
#[derive(Debug)]
pub struct LinkWatch {
    shared: Arc<Shared>,
}

impl LinkWatch {
    /// Starts the lookup thread, which sleeps until asked.
    pub fn spawn() -> std::io::Result<LinkWatch> {
        let shared = Arc::new(Shared::default());
        let worker = shared.clone();
        std::thread::Builder::new().name("bpc-links".into()).spawn(move || {
            loop {
                let wanted = {
                    let mut w = worker.wanted.lock().unwrap_or_else(|e| e.into_inner());
                    loop {
                        match w.take() {
                            Some(v) => break v,
                            None => w = worker.wake.wait(w).unwrap_or_else(|e| e.into_inner()),
                        }
                    }
                };
                let links = wanted.iter().map(|ip| ip.and_then(link_to)).collect();
                *worker.found.lock().unwrap_or_else(|e| e.into_inner()) = Some((wanted, links));
            }
        })?;
        Ok(LinkWatch { shared })
    }

    /// Asks for the links to `destinations` (replacing an unanswered request).
    pub fn request(&self, destinations: Vec<Option<Ipv4Addr>>) {
        *self.shared.wanted.lock().unwrap_or_else(|e| e.into_inner()) = Some(destinations);
        self.shared.wake.notify_one();
    }

    /// The last answer, once: for which destinations, and their links.
    /// Never waits: `None` while the thread holds the answer.
    pub fn take(&self) -> Option<Answer> {
        self.shared.found.try_lock().ok()?.take()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn an_answer_comes_for_the_destinations_asked_and_only_once() {
        let watch = LinkWatch::spawn().unwrap();
        assert!(watch.take().is_none(), "nothing asked yet");
        // An address no route leads to in the test's namespace: no link, but an answer.
        let asked = vec![Some(Ipv4Addr::new(198, 18, 255, 254)), None];
        watch.request(asked.clone());
        let deadline = Instant::now() + Duration::from_secs(5);
        let answer = loop {
            if let Some(a) = watch.take() {
                break a;
            }
            assert!(Instant::now() < deadline, "no answer within 5 s");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(answer.0, asked);
        assert_eq!(answer.1.len(), 2);
        assert!(answer.1[1].is_none(), "nothing looked up for a destination not asked for");
        assert!(watch.take().is_none(), "an answer is taken once");
    }
}

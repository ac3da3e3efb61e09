//! Collector name resolution: literals once, DNS names every
//! `--resolve-interval` on a background thread. A change is logged and
//! picked up by the capture loop through [`Stats::generation`]; a failed
//! lookup keeps the last good address and is counted.

use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::{info, warn};

use crate::config::CollectorSpec;
use crate::route::path_mtu;
use crate::stats::{Resolution, Stats};

/// Unresolved names are retried at least this often, whatever the interval.
const RETRY_UNRESOLVED: Duration = Duration::from_secs(5);
/// Used when the route MTU cannot be read (no route yet).
const DEFAULT_MTU: u32 = 1500;

/// Looks up `host`: the first address the system resolver returns (it
/// already orders them by RFC 6724 preference).
pub fn lookup(host: &str) -> Result<IpAddr, String> {
    match (host, 0u16).to_socket_addrs() {
        Ok(mut addrs) => addrs.next().map(|a| a.ip()).ok_or_else(|| "no address".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Resolves every collector once; returns whether anything changed.
pub fn resolve_all(specs: &[CollectorSpec], stats: &Stats) -> bool {
    let mut changed = false;
    for (i, spec) in specs.iter().enumerate() {
        let cs = &stats.collectors[i];
        let looked_up = match spec.literal {
            Some(ip) => Ok(ip),
            None => lookup(&spec.host),
        };
        let ip = match looked_up {
            Ok(ip) => ip,
            Err(e) => {
                cs.resolve.fetch_add(1, Ordering::Relaxed);
                let keeping = cs.resolution().map(|r| format!(", keeping {}", r.address)).unwrap_or_default();
                warn!(collector = %spec.host, error = %e, "cannot resolve collector{keeping}");
                *cs.resolve_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                continue;
            }
        };
        *cs.resolve_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let new = Resolution { address: ip, path_mtu: path_mtu(ip).unwrap_or(DEFAULT_MTU) };
        let mut current = cs.resolution.lock().unwrap_or_else(|e| e.into_inner());
        if *current != Some(new) {
            match *current {
                Some(old) if old.address != new.address => {
                    info!(collector = %spec.host, was = %old.address, now = %new.address, "collector address changed")
                }
                Some(old) => {
                    info!(collector = %spec.host, was = old.path_mtu, now = new.path_mtu, "collector path MTU changed")
                }
                None => {
                    info!(collector = %spec.host, address = %new.address, path_mtu = new.path_mtu, "collector resolved")
                }
            }
            *current = Some(new);
            changed = true;
        }
    }
    if changed {
        stats.generation.fetch_add(1, Ordering::Release);
    }
    changed
}

/// Starts the thread that re-resolves DNS names (and re-reads path MTUs)
/// every `interval`; unresolved names are retried every 5 s at most.
pub fn spawn(specs: Vec<CollectorSpec>, stats: Arc<Stats>, interval: Duration) -> std::io::Result<()> {
    std::thread::Builder::new().name("bpc-resolve".into()).spawn(move || {
        loop {
            let unresolved = stats.collectors.iter().any(|c| c.resolution().is_none());
            std::thread::sleep(if unresolved { interval.min(RETRY_UNRESOLVED) } else { interval });
            resolve_all(&specs, &stats);
        }
    })?;
    Ok(())
}

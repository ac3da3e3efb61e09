//! Values the agent and the CLI must agree on: the CLI decides the sidecar's
//! port and checks limits before a rollout, the agent enforces them at start.

/// The port of the agent's `/metrics`, `/stats` and `/healthz` when no
/// `--metrics-port` (CLI) or `--metrics-addr` (agent) moves it.
pub const DEFAULT_METRICS_PORT: u16 = 9469;

/// Bytes kept of a frame when no `--snaplen` cuts it (tcpdump's `-s 0`): the
/// capture ring's frame size, the pcap/pcapng interfaces' snap length of the
/// agent's `--write`, the receiver's files and `capture -w`'s merge.
pub const SNAPLEN: u32 = 262_144;

/// How the agent's final tally starts (its log and its termination message,
/// which `kubectl bpc capture` and `status --captures` recognise by it).
pub const FINAL_TALLY_PREFIX: &str = "stopped after ";

/// Most collectors one agent streams to (each packet goes to every one).
pub const MAX_COLLECTORS: usize = 4;

/// Capture ring size in MiB when `--buffer` (`BPC_BUFFER`) is not given.
pub const DEFAULT_BUFFER_MIB: u32 = 24;
/// Smallest `--buffer`: 8 super-frame blocks of 128 KiB and 32 frame blocks of 32 KiB.
pub const MIN_BUFFER_MIB: u32 = 2;
/// Largest `--buffer`: far beyond any sidecar's memory budget already.
pub const MAX_BUFFER_MIB: u32 = 1024;

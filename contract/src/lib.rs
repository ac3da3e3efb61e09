//! The contracts between kubectl-bpc's crates, each with one owner: here.
//!
//! A format two crates share is defined once, so the writer and the reader
//! cannot drift apart:
//!
//! * [`stats`]: the agent's `GET /stats` JSON (`bpc-agent` fills it from
//!   its counters, `kubectl bpc status` reads it through the pod proxy);
//!   `testdata/status/agent-stats.json` is its golden example.
//! * [`map`]: the rows of `kubectl bpc map -o json` (the CLI writes them,
//!   `bpc-sim --map` and `kubectl bpc sink --map-watch` read them).
//! * [`stream`]: one received GRE stream as the receiver reports it (`bpc-sim`
//!   writes it, `kubectl bpc sink` and `verify` read it).
//! * [`env`]: the `BPC_*` environment variables the CLI writes into the
//!   sidecar and the agent reads.
//! * [`options`]: the enums both the agent's flags and the CLI's flags take
//!   ([`Oversize`], [`GreProfile`], [`SendPath`]), with the names they travel by.
//! * [`defaults`]: the values both sides must agree on (metrics port,
//!   collector limit, capture buffer).
//! * [`duration`]: durations as both sides' flags take them, and the range
//!   of `--batch`.
//!
//! The crate depends on serde only (clap behind the `clap` feature), does no
//! I/O and knows no Kubernetes, so every crate of the workspace may use it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The name table of an enum that travels as a word (a flag value, an
/// environment value, a JSON string): `as_str`, `Display` (padded, so the
/// text tables can align it) and a case-insensitive `FromStr` with aliases.
/// One table per enum, so the names cannot differ between directions.
macro_rules! names {
    ($ty:ident, $what:literal { $($variant:ident => $name:literal $(| $alias:literal)*),+ $(,)? }) => {
        impl $ty {
            /// The name on the command line, in the environment and in JSON.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::ParseNameError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($name $(| $alias)* => Ok($ty::$variant),)+
                    _ => Err($crate::ParseNameError {
                        what: $what,
                        value: s.to_owned(),
                        expected: &[$($name),+],
                    }),
                }
            }
        }
    };
}

pub mod defaults;
pub mod duration;
pub mod env;
pub mod map;
pub mod options;
pub mod stats;
pub mod stream;

pub use options::{Encap, GreProfile, OnError, Oversize, ParseNameError, SendPath};

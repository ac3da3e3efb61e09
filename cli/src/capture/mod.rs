//! `kubectl bpc capture`: capture running pods now, with no restart.
//!
//! Each pod gets an ephemeral container `bpc-capture-<id>` running the agent
//! (built by [`crate::sidecar::container`], then stripped of what ephemeral
//! containers may not have: ports, probes, resources), added through the
//! `pods/ephemeralcontainers` subresource with a strategic merge patch that
//! names only that container. Ephemeral containers share the pod's network
//! namespace, so the pod keeps running untouched.
//!
//! The agent runs with `--stdin-control`: the plugin attaches (`pods/attach`,
//! websocket) to its stdin and stdout, sends one byte to start it (output
//! written before an attach is not replayed, and pcapng needs its header),
//! and sends another, or detaches, to stop it. With `-w` the agent writes
//! pcapng to stdout, which the plugin merges ([`crate::merge`]) into FILE or
//! its own stdout; with `--collector` it streams GRE as the sidecar does.
//!
//! By job: `args` the flags ([`CaptureArgs`]), checked once into a
//! [`Capture`]; `pods` which pods; `container` the ephemeral container; `plan` the
//! pre-flight and the patch; `state` the container's state and the waits on
//! it; `stream` one pod's attach; `output` the merged pcapng and live lines;
//! `run` the whole command; `listing` the captures `status` lists.

mod args;
mod container;
mod listing;
mod output;
mod plan;
mod pods;
mod run;
mod state;
mod stream;

pub use args::{Capture, CaptureArgs, Selection, Target};
pub use container::{capture_container, sidecar_collectors, without_gre_to};
pub use listing::{CaptureListing, captures_of};
pub use output::interfaces;
pub use plan::{Planned, add_container, plan};
pub use pods::{resolve_pods, workload_of};
pub use run::run;
pub use state::{ContainerState, container_state};

/// Prefix of the ephemeral containers' names.
pub const CONTAINER_PREFIX: &str = "bpc-capture-";

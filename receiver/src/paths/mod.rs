//! Service path discovery: from the inner frames of every stream, which
//! workload calls which, per protocol and server port.
//!
//! The hot path ([`FlowTable::observe`]) only updates a flow record keyed by
//! a small `Copy` key: the flow's two ends in canonical order plus the
//! capturing pod (the GRE source). Everything that needs the map (labels,
//! Services, dedup of flows both ends captured) happens when a report is
//! built, so a map that changes mid-capture labels every live flow with the
//! freshest answer, and [`crate::map::WorkloadMap::update`] keeps replaced
//! pods' addresses so their flows keep their workload. Flows idle for long
//! are folded into their edges ([`FlowTable::compact`]) with the labels of
//! that moment: memory stays bounded on a long capture.

use std::collections::HashMap;
use std::net::IpAddr;

mod edges;
mod flows;
mod record;
mod render;
mod schema;

pub use flows::{FlowTable, TcpFlags};
pub use render::{edge_label, render_dot, top_edges};
pub use schema::{Clock, NodeType, Observer, PATHS_SCHEMA, PathEdge, PathNode, PathsReport, Rtt, Stamp};

/// The pods streaming to the receiver (stream sources), each with the
/// first and last receive time of its streams (Unix nanoseconds).
pub type Capturing = HashMap<IpAddr, (u64, u64)>;

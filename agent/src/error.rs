//! The agent's error type and how each error maps to an exit code.

use std::io;

/// Everything that can stop the agent.
///
/// [`Error::exit_code`] splits them the way the pod contract needs: 2 when the
/// operator must change something (configuration, permissions), 1 otherwise.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or environment variable has a value the agent cannot use.
    #[error("{0}")]
    Config(String),

    /// The capture filter does not compile; the message is libpcap's.
    #[error("invalid --filter (BPC_FILTER) {filter:?}: {message}")]
    Filter {
        /// The full effective filter that was compiled.
        filter: String,
        /// libpcap's explanation.
        message: String,
    },

    /// The capture interface cannot be used.
    #[error("{0}")]
    Interface(String),

    /// The process lacks CAP_NET_RAW.
    #[error(
        "cannot {what}: {source}. bpc-agent needs the CAP_NET_RAW capability (and nothing else). \
         Grant it to the bpc-agent container in the pod spec: \
         securityContext: {{capabilities: {{add: [\"NET_RAW\"]}}}} \
         (`kubectl bpc attach --capabilities` writes this); as a non-root user also keep \
         allowPrivilegeEscalation unset or true so the image's file capability applies, \
         or run the container as user 0 with capabilities drop [\"ALL\"] add [\"NET_RAW\"]"
    )]
    Permission {
        /// What the agent tried to do.
        what: &'static str,
        /// The EPERM/EACCES the kernel returned.
        source: io::Error,
    },

    /// The metrics endpoint cannot listen on its address.
    #[error(
        "cannot listen on --metrics-addr (BPC_METRICS_ADDR) {addr}: {source}; choose a free address:port"
    )]
    MetricsBind {
        /// The address that was asked for.
        addr: String,
        /// Why the bind failed.
        source: io::Error,
    },

    /// The kernel refused the capture ring `--buffer` asked for.
    #[error(
        "the kernel refused a capture ring of {mib} MiB ({blocks} blocks of {block_kib} KiB) for --buffer \
         (BPC_BUFFER): {source}; choose a smaller --buffer (default 24) or free memory on the node"
    )]
    Ring {
        /// The `--buffer` given.
        mib: u32,
        /// Blocks asked for.
        blocks: usize,
        /// Their size in KiB.
        block_kib: usize,
        /// What setsockopt(PACKET_RX_RING) or mmap said.
        source: io::Error,
    },

    /// A system call failed at run time.
    #[error("{what}: {source}")]
    Io {
        /// What the agent was doing.
        what: String,
        /// The kernel's error.
        source: io::Error,
    },
}

impl Error {
    /// The process exit code for this error: 2 for configuration and
    /// permission problems the operator must fix, 1 for runtime failures.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_)
            | Error::Filter { .. }
            | Error::Interface(_)
            | Error::Permission { .. }
            | Error::MetricsBind { .. }
            | Error::Ring { .. } => 2,
            Error::Io { .. } => 1,
        }
    }

    /// An [`Error::Io`] for the current `errno`, or [`Error::Permission`]
    /// when that errno says a capability is missing.
    pub(crate) fn last_os(what: &'static str) -> Error {
        Error::os(what, io::Error::last_os_error())
    }

    /// Classifies `err`: EPERM/EACCES become [`Error::Permission`].
    pub(crate) fn os(what: &'static str, err: io::Error) -> Error {
        match err.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => Error::Permission { what, source: err },
            _ => Error::Io { what: what.to_owned(), source: err },
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eperm_becomes_a_permission_error_with_exit_code_2_naming_net_raw() {
        let e = Error::os("open a capture socket", io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(msg.contains("CAP_NET_RAW") && msg.contains("NET_RAW") && msg.contains("--capabilities"));
    }

    #[test]
    fn a_refused_ring_is_a_configuration_error_naming_the_flag_and_the_fix() {
        let e = Error::Ring {
            mib: 512,
            blocks: 4096,
            block_kib: 128,
            source: io::Error::from_raw_os_error(libc::ENOMEM),
        };
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(
            msg.contains("--buffer (BPC_BUFFER)") && msg.contains("512 MiB") && msg.contains("smaller"),
            "{msg}"
        );
    }

    #[test]
    fn other_os_errors_are_runtime_failures_with_exit_code_1() {
        let e = Error::os("send", io::Error::from_raw_os_error(libc::ENOMEM));
        assert_eq!(e.exit_code(), 1);
    }
}

//! kubectl-bpc as a Wireshark extcap: the interface `bpc`, "Kubernetes
//! workloads (kubectl bpc)", whose options pick a context, a namespace and a
//! target; a capture is `kubectl bpc capture -w` into Wireshark's pipe.
//!
//! [`protocol`] parses Wireshark's call and writes its answers, [`config`]
//! finds the dialog's values, [`capture`] runs the capture, [`install`]
//! puts the program in Wireshark's extcap folder.

pub mod capture;
pub mod config;
pub mod install;
pub mod protocol;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use protocol::Request;
pub use protocol::is_extcap_call;

use crate::Error;

/// Answers one extcap call: its answer on stdout, or one line on stderr
/// (what Wireshark shows in its error dialog) and exit 1.
pub async fn main(args: &[OsString]) -> ExitCode {
    match answer(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", protocol::error_line(&e));
            ExitCode::FAILURE
        }
    }
}

async fn answer(args: &[OsString]) -> Result<ExitCode, Error> {
    let text = match Request::parse(args)? {
        Request::Interfaces => protocol::interfaces(),
        Request::Dlts => protocol::dlts(),
        Request::Config { reload: None, cluster } => {
            let (contexts, namespaces) = config::from_kubeconfig(&cluster);
            protocol::config(&contexts, &namespaces)
        }
        Request::Config { reload: Some(opt), cluster } => {
            protocol::values(opt, &config::reload(opt, &cluster).await?)
        }
        Request::CheckFilter(filter) => {
            // Wireshark shows stdout as the reason a filter is invalid.
            return Ok(match crate::preflight::compile_filter(&filter) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    println!("{e}");
                    ExitCode::FAILURE
                }
            });
        }
        Request::Capture(req) => {
            let kube = config::connect(&req.cluster).await?;
            return capture::run(&req, &kube).await;
        }
    };
    let mut out = std::io::stdout();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

//! How attach and detach report: each workload's line (or object, or diff)
//! the kubectl way, the rollouts waited for, and the exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use serde_json::Value;

use super::{ChangeArgs, Done, DryRun};
use crate::kube_context::Kube;
use crate::output::{self, ObjectFormat};
use crate::workload::WorkloadId;
use crate::{EXIT_WORKLOAD_FAILED, Error};

/// Prints results the kubectl way and turns failures into the exit code.
pub(super) struct Reporter<'a> {
    pub(super) change: &'a ChangeArgs,
    pub(super) objects: Vec<Value>,
    pub(super) failed: usize,
}

impl Reporter<'_> {
    fn format(&self) -> Option<ObjectFormat> {
        match (self.change.output, self.change.dry_run) {
            (Some(f), _) => Some(f),
            (None, DryRun::Client) if !self.change.diff => Some(ObjectFormat::Yaml),
            _ => None,
        }
    }

    fn done(&mut self, done: &Done) -> Result<(), Error> {
        let suffix = match self.change.dry_run {
            DryRun::None => "",
            DryRun::Client => " (dry run)",
            DryRun::Server => " (server dry run)",
        };
        let line = format!("{} {}{suffix}", done.workload, done.action.in_cluster());
        if self.change.diff {
            let d = output::diff(
                &done.workload.to_string(),
                &output::for_display(done.before.clone()),
                &output::for_display(done.object.clone()),
            )?;
            output::print(&d)?;
        }
        if self.format().is_some() {
            eprintln!("{line}");
            self.objects.push(output::for_display(done.object.clone()));
        } else {
            output::print(&format!("{line}\n"))?;
        }
        Ok(())
    }

    /// Prints a workload's result, or counts its failure; other errors
    /// (API, output) end the command.
    pub(super) fn outcome(&mut self, result: Result<Done, Error>) -> Result<Option<Done>, Error> {
        match result {
            Ok(done) => {
                self.done(&done)?;
                Ok(Some(done))
            }
            Err(e @ (Error::Workload(_) | Error::Usage(_))) => {
                self.failed(&e);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub(super) fn failed(&mut self, e: &Error) {
        eprintln!("error: {e}");
        self.failed += 1;
    }

    pub(super) fn finish(self) -> Result<ExitCode, Error> {
        if let Some(format) = self.format()
            && !self.objects.is_empty()
        {
            output::print(&output::render(self.objects, format)?)?;
        }
        Ok(if self.failed > 0 { ExitCode::from(EXIT_WORKLOAD_FAILED) } else { ExitCode::SUCCESS })
    }
}

/// With `--wait`, follows the rollouts the changes started, all together;
/// `deadline` (the command's start plus `--timeout`) bounds the whole
/// command. Returns the workloads whose rollout failed, with why.
pub(super) async fn wait_rollouts(
    kube: &Kube,
    change: &ChangeArgs,
    done: &[Done],
    attached: bool,
    deadline: std::time::Instant,
) -> Vec<(WorkloadId, Error)> {
    if !change.wait || change.dry_run != DryRun::None {
        return Vec::new();
    }
    let targets: Vec<crate::rollout::WaitTarget> = done
        .iter()
        .filter(|d| d.action.rolls())
        .map(|d| crate::rollout::WaitTarget { id: d.workload.clone(), attached })
        .collect();
    let results = crate::rollout::wait(&kube.client, &targets, deadline, change.timeout).await;
    targets.into_iter().zip(results).filter_map(|(t, r)| r.err().map(|e| (t.id, e))).collect()
}

/// Asks on a terminal whether to roll back; false when not interactive.
pub(super) fn confirm(question: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && answer.trim().eq_ignore_ascii_case("y")
}

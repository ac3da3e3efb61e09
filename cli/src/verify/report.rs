//! The verification's outcome, per pod and in all, and its rendering.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use crate::Error;

use super::*;

/// Result of one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodResult {
    /// Pod name.
    pub pod: String,
    /// Pod IP (the stream's source address).
    pub ip: String,
    /// Workload key expected on its stream.
    pub key: String,
    /// Whether the pod runs the template that includes the sink.
    pub has_sink: bool,
    /// Packets received from it.
    pub packets: u64,
    /// Sequence numbers missing.
    pub lost: u64,
    /// PASS or FAIL.
    pub pass: bool,
}

/// The verify report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// `kind/name`.
    pub workload: String,
    /// Namespace.
    pub namespace: String,
    /// Sink address the pods sent to.
    pub sink: String,
    /// PASS, or FAIL and why: `pass` and `reason` in JSON.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Per ready pod.
    pub pods: Vec<PodResult>,
    /// Whether the original collectors were restored.
    pub restored: bool,
    /// `--ephemeral`: proven with ephemeral captures; the workload was not changed.
    pub ephemeral: bool,
}

impl VerifyReport {
    /// 0 PASS, 1 FAIL.
    pub fn exit_code(&self) -> ExitCode {
        if self.outcome.passed() { ExitCode::SUCCESS } else { ExitCode::from(1) }
    }
}

/// A verification's verdict. One value rather than a flag beside an
/// optional reason, so that the two cannot disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every pod delivered enough packets.
    Pass,
    /// Not (yet), and why.
    Fail(String),
}

impl Outcome {
    /// Whether it passed.
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Pass)
    }

    /// Why not, when not.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Pass => None,
            Outcome::Fail(why) => Some(why),
        }
    }

    /// The final verdict of a wait that ended at `timeout` without a pass.
    pub(super) fn after_timeout(self, timeout: Duration) -> Self {
        match self {
            Outcome::Pass => Outcome::Pass,
            Outcome::Fail(why) => Outcome::Fail(format!("timed out after {timeout:?}: {why}")),
        }
    }
}

/// `{"pass": bool, "reason": string|null}`, the report's schema since
/// before the enum.
impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Outcome", 2)?;
        s.serialize_field("pass", &self.passed())?;
        s.serialize_field("reason", &self.reason())?;
        s.end()
    }
}

/// One look at the pods and the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The verdict of this look.
    pub outcome: Outcome,
    /// Per pod, sorted by name.
    pub pods: Vec<PodResult>,
}

impl Evaluation {
    /// The verdict from the results, or `failure` if the pods as a whole fail.
    pub(super) fn of(pods: Vec<PodResult>, failure: Option<String>, min_packets: u64) -> Self {
        let outcome = match failure.or_else(|| first_short(&pods, min_packets)) {
            None => Outcome::Pass,
            Some(why) => Outcome::Fail(why),
        };
        Evaluation { outcome, pods }
    }
}

/// Writes the report.
pub fn render(report: &VerifyReport, format: VerifyFormat, out: &mut impl Write) -> Result<(), Error> {
    if format == VerifyFormat::Json {
        serde_json::to_writer_pretty(&mut *out, report)?;
        writeln!(out)?;
        return Ok(());
    }
    for p in &report.pods {
        let loss =
            if p.packets + p.lost == 0 { 0.0 } else { 100.0 * p.lost as f64 / (p.packets + p.lost) as f64 };
        writeln!(
            out,
            "{:<6} {}  ip {}  key {}  packets {}  lost {} ({loss:.2}%){}",
            if p.pass { "PASS" } else { "FAIL" },
            p.pod,
            p.ip,
            p.key,
            p.packets,
            p.lost,
            if p.has_sink { "" } else { "  (old pod: no sink collector)" }
        )?;
    }
    match report.outcome.reason() {
        None => writeln!(
            out,
            "PASS {} -n {}: every ready pod reached {}",
            report.workload, report.namespace, report.sink
        )?,
        Some(r) => writeln!(out, "FAIL {} -n {}: {r}", report.workload, report.namespace)?,
    }
    if report.ephemeral {
        writeln!(out, "the workload was not changed; the captures end by themselves")?;
    } else {
        writeln!(out, "original collectors restored")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn a_report_serializes_its_outcome_as_pass_and_reason_in_place() {
        let report = |outcome| VerifyReport {
            workload: "deployment/web".into(),
            namespace: "shop".into(),
            sink: "198.18.0.9".into(),
            outcome,
            pods: Vec::new(),
            restored: true,
            ephemeral: false,
        };
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        let pass = serde_json::to_value(report(Outcome::Pass)).unwrap();
        assert_eq!(
            keys(&pass),
            ["workload", "namespace", "sink", "pass", "reason", "pods", "restored", "ephemeral"]
        );
        assert_eq!((&pass["pass"], &pass["reason"]), (&json!(true), &Value::Null));
        let fail = serde_json::to_value(report(Outcome::Fail("no ready pod".into()))).unwrap();
        assert_eq!((&fail["pass"], &fail["reason"]), (&json!(false), &json!("no ready pod")));
    }

    #[tokio::test]
    async fn a_look_that_could_not_be_made_fails_with_its_reason_and_keeps_the_pods_seen_before() {
        let pod = PodResult {
            pod: "web-a".into(),
            ip: "198.18.1.2".into(),
            key: "0x773f9626".into(),
            has_sink: true,
            packets: 3,
            lost: 0,
            pass: false,
        };
        let first =
            Evaluation { outcome: Outcome::Fail("web-a delivered 3 of 10 packets".into()), pods: vec![pod] };
        let mut looks = vec![Err("cannot list pods: 503".to_owned()), Ok(first.clone())];
        // Two looks: at once, then 500 ms later, past the 300 ms timeout.
        let last = wait_for_pass(Duration::from_millis(300), || {
            let next = looks.pop().expect("only two looks");
            async move { next }
        })
        .await;
        assert_eq!(last.outcome, Outcome::Fail("timed out after 300ms: cannot list pods: 503".into()));
        assert_eq!(last.pods, first.pods);
    }
}

//! The `status` text and JSON renderings of a fixture report, compared with
//! the golden files shown in docs/guide.md (Checking capture) (no cluster here: the report is a
//! fixture). Regenerate with `BLESS=1 cargo test -p kubectl-bpc --test status_render`.

use bpc_wire::WorkloadKey;
use kubectl_bpc::status::{self, Marks, StatusFormat, StatusReport, Verdict};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/status/");

fn fixture() -> StatusReport {
    let text = std::fs::read_to_string(format!("{DIR}report.json")).unwrap();
    serde_json::from_str(&text).expect("report.json follows the documented -o json shape")
}

fn golden(name: &str, actual: &str) {
    let path = format!("{DIR}{name}");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(actual, expected, "{name} differs; BLESS=1 to regenerate after checking the diff");
}

fn rendered(format: StatusFormat, marks: Marks) -> String {
    let mut out = Vec::new();
    status::render(&fixture(), format, marks, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn fixture_keys_are_the_workload_keys() {
    for w in fixture().workloads {
        let key = WorkloadKey::from_workload(&w.namespace, w.kind.as_str(), &w.name).to_string();
        for p in w.pods.iter().filter_map(|p| p.stats.as_ref()) {
            assert_eq!(p.key, key, "{}/{}", w.namespace, w.name);
        }
    }
}

#[test]
fn summary_and_workload_verdicts_are_consistent_with_pods() {
    let r = fixture();
    let rebuilt = StatusReport::new(r.workloads.clone());
    assert_eq!(rebuilt.summary, r.summary);
    assert_eq!(rebuilt.ok, r.ok);
    for w in &r.workloads {
        let worst = w.pods.iter().map(|p| p.judgement.verdict).max().unwrap_or(Verdict::Ok);
        assert_eq!(w.judgement.verdict, worst, "{}", w.name);
    }
}

#[test]
fn plain_table_matches_golden() {
    golden("status-table.txt", &rendered(StatusFormat::Table, Marks::PLAIN));
}

#[test]
fn tty_wide_table_matches_golden() {
    golden("status-wide-tty.txt", &rendered(StatusFormat::Wide, Marks::TTY));
}

#[test]
fn json_round_trips_to_the_same_report() {
    let json = rendered(StatusFormat::Json, Marks::PLAIN);
    let back: StatusReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, fixture());
}

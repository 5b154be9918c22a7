//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use xmppscope::capture::FileSource;
use xmppscope::dissect::{Config, Dissector};
use xmppscope::model::Packet;
use xmppscope::output::stats::Stats;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared` beside the repository, if present. Absent: the caller
/// skips with a visible message, except under CI where that is a failure.
pub fn shared() -> Option<PathBuf> {
    let p = root().join("../shared");
    if p.is_dir() {
        return Some(p);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "../shared is missing, and CI=true: the golden and truth tests cannot be skipped in CI"
        );
    }
    eprintln!(
        "SKIPPED: ../shared not found beside the repository; golden and truth tests did not run"
    );
    None
}

/// Everything one capture yields.
pub struct Run {
    pub packets: Vec<Packet>,
    pub stats: Stats,
}

/// Dissect a whole capture with this configuration.
pub fn dissect(path: &Path, cfg: Config) -> Run {
    let mut src = FileSource::open(path.to_str().unwrap()).unwrap();
    let lt = src.linktype();
    let mut d = Dissector::new(cfg);
    let mut packets = Vec::new();
    let mut stats = Stats::default();
    let mut last = 0;
    while let Some(f) = src.next_frame().unwrap() {
        let mut p = Packet::default();
        d.dissect(f.number, f.ts, lt, f.data, f.len, &mut p);
        last = f.number;
        for e in &p.events {
            stats.add_event(e);
        }
        for n in &p.notes {
            stats.add_note(n);
        }
        let (ev, notes) = d.take_flushed();
        for e in &ev {
            stats.add_event(e);
        }
        for n in &notes {
            stats.add_note(n);
        }
        packets.push(p);
    }
    d.finish(last);
    let (ev, notes) = d.take_flushed();
    for e in &ev {
        stats.add_event(e);
    }
    for n in &notes {
        stats.add_note(n);
    }
    stats.set_counters(d.counters());
    Run { packets, stats }
}

/// The built binary.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xmppscope"))
}

/// Run `gen-xmpp-pcap` from ../shared into `dir`; returns (capture, truth).
pub fn generate(
    shared: &Path,
    dir: &Path,
    name: &str,
    args: &[&str],
) -> (PathBuf, serde_json::Value) {
    let out = dir.join(name);
    let truth = dir.join(format!("{name}.json"));
    let status = Command::new("sh")
        .arg(shared.join("bench/gen-xmpp-pcap"))
        .arg("--out")
        .arg(&out)
        .arg("--truth")
        .arg(&truth)
        .args(args)
        .status()
        .expect("run gen-xmpp-pcap (needs a C compiler)");
    assert!(status.success(), "gen-xmpp-pcap failed: {args:?}");
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&truth).unwrap()).unwrap();
    (out, t)
}

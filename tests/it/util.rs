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

/// The .pcap and .pcapng files in `dir`, sorted.
pub fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut caps: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    caps.sort();
    caps
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

/// An Ethernet/IPv4/TCP frame (ACK flag off, window 65535) for hand-built
/// captures.
pub fn tcp_frame(
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    seq: u32,
    syn: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(src.0, dst.0, 64)
        .tcp(src.1, dst.1, seq, 65535);
    if syn {
        b = b.syn();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// An Ethernet/IPv4/UDP frame for hand-built captures.
pub fn udp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(src, dst, 64)
        .udp(sport, dport);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// A classic pcap (Ethernet, microseconds) of these frames: frame `i` at
/// 2013-05-15 12:00:00 + `i` s + `step_us` × (`i` mod 1000) µs.
pub fn classic_pcap(frames: &[Vec<u8>], step_us: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&262_144u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        b.extend_from_slice(&(1_368_619_200u32 + u32::try_from(i).unwrap()).to_le_bytes());
        b.extend_from_slice(&(step_us * u32::try_from(i % 1000).unwrap()).to_le_bytes());
        let n = u32::try_from(f.len()).unwrap();
        b.extend_from_slice(&n.to_le_bytes());
        b.extend_from_slice(&n.to_le_bytes());
        b.extend_from_slice(f);
    }
    b
}

//! Hostile input is normal input: captures built by the tests themselves
//! that try to exhaust memory or time. Each stays within the named limits,
//! says so with an expert note, and keeps dissecting the other flows.

use crate::util::tcp_frame;
use xmppscope::dissect::{Config, Dissector};
use xmppscope::link::dlt;
use xmppscope::model::{NoteKind, Packet, Timestamp};

/// Frames fed straight into a dissector, with the notes and Info items
/// collected, and the largest amount of buffered data seen.
struct Feed {
    d: Dissector,
    p: Packet,
    n: u64,
    infos: Vec<String>,
    notes: Vec<NoteKind>,
    peak_buffered: usize,
}

impl Feed {
    fn new(cfg: Config) -> Self {
        Self {
            d: Dissector::new(cfg),
            p: Packet::default(),
            n: 0,
            infos: Vec::new(),
            notes: Vec::new(),
            peak_buffered: 0,
        }
    }

    fn frame(&mut self, bytes: &[u8], wire_len: u32) {
        self.n += 1;
        let ts = Timestamp {
            secs: 1_000_000 + (self.n / 1000) as i64,
            nanos: 0,
        };
        self.d
            .dissect(self.n, ts, dlt::EN10MB, bytes, wire_len, &mut self.p);
        self.infos
            .extend(self.p.events.iter().map(|e| e.info.clone()));
        self.notes.extend(self.p.notes.iter().map(|n| n.kind));
        self.notes.extend(
            self.p
                .events
                .iter()
                .flat_map(|e| e.notes.iter().map(|n| n.kind)),
        );
        let (late, notes) = self.d.take_flushed();
        self.infos.extend(late.iter().map(|e| e.info.clone()));
        self.notes.extend(notes.iter().map(|n| n.kind));
        if self.n.is_multiple_of(997) {
            self.peak_buffered = self.peak_buffered.max(self.d.buffered_bytes());
        }
    }

    fn tcp(
        &mut self,
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
        seq: u32,
        syn: bool,
        payload: &[u8],
    ) {
        let f = tcp_frame(src, dst, seq, syn, payload);
        let len = f.len() as u32;
        self.frame(&f, len);
    }

    fn has(&self, k: NoteKind) -> bool {
        self.notes.contains(&k)
    }
}

const C: ([u8; 4], u16) = ([10, 0, 0, 1], 40000);
const S: ([u8; 4], u16) = ([203, 0, 113, 5], 5222);
const C2: ([u8; 4], u16) = ([10, 0, 0, 2], 40001);
const HEADER: &[u8] =
    b"<stream:stream to='x' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// A well-behaved flow interleaved with the hostile one must be dissected
/// exactly: returns the seq after sending header + one message.
fn good_flow_start(f: &mut Feed) -> u32 {
    f.tcp(C2, S, 99, true, b"");
    f.tcp(C2, S, 100, false, HEADER);
    100 + HEADER.len() as u32
}

fn good_flow_message(f: &mut Feed, seq: u32, n: usize) -> u32 {
    let m = format!("<message to='good@x'><body>fine {n}</body></message>");
    f.tcp(C2, S, seq, false, m.as_bytes());
    seq + m.len() as u32
}

#[test]
fn never_closing_200_mb_element_is_skipped_with_bounded_memory() {
    let mut f = Feed::new(Config::default());
    let mut good = good_flow_start(&mut f);
    f.tcp(C, S, 0, true, b"");
    let mut seq = 1;
    f.tcp(C, S, seq, false, HEADER);
    seq += HEADER.len() as u32;
    f.tcp(C, S, seq, false, b"<message><body>");
    seq += 15;
    let chunk = vec![b'a'; 1448];
    let total = 200 * 1000 * 1000 / chunk.len();
    for i in 0..total {
        f.tcp(C, S, seq, false, &chunk);
        seq = seq.wrapping_add(chunk.len() as u32);
        if i % 20_000 == 0 {
            good = good_flow_message(&mut f, good, i);
        }
    }
    f.tcp(C, S, seq, false, b"</body></message><presence/>");
    let limit = Config::default().limits.framer.max_element_bytes;
    assert!(f.has(NoteKind::LimitElementSize), "the user must be told");
    assert!(
        f.peak_buffered <= limit + 64 * 1024,
        "buffered {} > limit {limit}",
        f.peak_buffered
    );
    // The stream goes on after the giant, and the other flow was untouched.
    assert!(
        f.infos.iter().any(|i| i == "PRESENCE"),
        "{:?}",
        &f.infos[f.infos.len().saturating_sub(5)..]
    );
    let good_msgs = f
        .infos
        .iter()
        .filter(|i| i.starts_with("MESSAGE > good@x"))
        .count();
    assert_eq!(good_msgs, total.div_ceil(20_000));
}

#[test]
fn a_million_syn_only_flows_are_evicted_with_a_note() {
    let mut cfg = Config::default();
    cfg.limits.max_flows = 10_000;
    let mut f = Feed::new(cfg);
    let mut good = good_flow_start(&mut f);
    for i in 0..1_000_000u32 {
        let src = (
            [10, (i >> 16) as u8, (i >> 8) as u8, i as u8],
            1024 + (i % 50_000) as u16,
        );
        let frame = tcp_frame(src, S, i, true, b"");
        f.frame(&frame, frame.len() as u32);
        if i % 1000 == 0 {
            // The good flow keeps talking, so it is never the least recent.
            good = good_flow_message(&mut f, good, i as usize);
        }
        assert!(f.d.open_flows() <= 10_000);
    }
    assert!(f.has(NoteKind::LimitFlows));
    assert_eq!(f.d.counters().flows, 1_000_001);
    assert_eq!(
        f.infos
            .iter()
            .filter(|i| i.starts_with("MESSAGE > good@x"))
            .count(),
        1000
    );
    assert!(f.peak_buffered < 1 << 20);
}

#[test]
fn nesting_100_000_deep_is_skipped() {
    let mut f = Feed::new(Config::default());
    f.tcp(C, S, 0, true, b"");
    let mut seq = 1;
    let mut stream = HEADER.to_vec();
    stream.extend(std::iter::repeat_n(b"<a>".as_slice(), 100_000).flatten());
    stream.extend(std::iter::repeat_n(b"</a>".as_slice(), 100_000).flatten());
    stream.extend_from_slice(b"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>");
    for c in stream.chunks(1448) {
        f.tcp(C, S, seq, false, c);
        seq += c.len() as u32;
    }
    assert!(f.has(NoteKind::LimitElementDepth));
    assert!(f.infos.iter().any(|i| i == "IQ(get) PING"), "{:?}", f.infos);
}

#[test]
fn billion_laughs_is_never_expanded() {
    let mut f = Feed::new(Config::default());
    f.tcp(C, S, 0, true, b"");
    let mut body = String::from("<!DOCTYPE lolz [<!ENTITY lol \"lol\">");
    for i in 1..10 {
        body.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">",
            format!("&lol{};", i - 1).repeat(10)
        ));
    }
    body.push_str("]>");
    let mut stream = HEADER.to_vec();
    stream.extend_from_slice(body.as_bytes());
    stream.extend_from_slice(b"<message to='a@b'><body>&lol9;</body></message>");
    f.tcp(C, S, 1, false, &stream);
    assert!(f.has(NoteKind::MalformedXml), "a DTD is not XMPP");
    assert!(
        f.infos.iter().any(|i| i == "MESSAGE > a@b \"&lol9;\""),
        "{:?}",
        f.infos
    );
    assert!(f.peak_buffered < 1 << 20);
}

#[test]
fn random_bytes_on_5222_are_not_xmpp_and_do_not_panic() {
    let mut f = Feed::new(Config::default());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut seq = 1u32;
    f.tcp(C, S, 0, true, b"");
    for _ in 0..2000 {
        let mut buf = vec![0u8; 700];
        for b in &mut buf {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        buf[0] = 0x01; // not '<', not a TLS record
        f.tcp(C, S, seq, false, &buf);
        seq = seq.wrapping_add(700);
    }
    assert!(f.has(NoteKind::NotXmpp));
    assert!(f.infos.is_empty());
    // Random garbage inside an XMPP stream: notes, never a panic.
    let mut g = Feed::new(Config::default());
    g.tcp(C, S, 0, true, b"");
    g.tcp(C, S, 1, false, HEADER);
    let mut seq = 1 + HEADER.len() as u32;
    for _ in 0..2000 {
        let mut buf = vec![0u8; 300];
        for b in &mut buf {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = if x.is_multiple_of(5) { b'<' } else { x as u8 };
        }
        g.tcp(C, S, seq, false, &buf);
        seq = seq.wrapping_add(300);
    }
    g.tcp(C, S, seq, false, b"<presence/>");
    assert!(g.has(NoteKind::MalformedXml) || g.has(NoteKind::XmlResync));
    assert!(g.peak_buffered <= Config::default().limits.framer.max_element_bytes + 64 * 1024);
}

#[test]
fn overlapping_retransmission_with_different_bytes_is_noted() {
    let mut f = Feed::new(Config::default());
    f.tcp(C, S, 0, true, b"");
    f.tcp(C, S, 1, false, HEADER);
    let seq = 1 + HEADER.len() as u32;
    f.tcp(
        C,
        S,
        seq,
        false,
        b"<message to='a@b'><body>first</body></message>",
    );
    f.tcp(
        C,
        S,
        seq,
        false,
        b"<message to='a@b'><body>EVIL!</body></message>",
    );
    assert!(f.has(NoteKind::TcpOverlapConflict));
    let msgs: Vec<&String> = f
        .infos
        .iter()
        .filter(|i| i.starts_with("MESSAGE"))
        .collect();
    assert_eq!(
        msgs,
        ["MESSAGE > a@b \"first\""],
        "the first copy wins, once"
    );
}

#[test]
fn zero_length_maximum_length_and_jumbo_frames() {
    let mut f = Feed::new(Config::default());
    f.frame(&[], 0);
    f.frame(&vec![0xFF; 262_144], 262_144);
    assert!(f.has(NoteKind::MalformedFrame));
    // A 9000-byte jumbo frame captured whole…
    f.tcp(C, S, 0, true, b"");
    f.tcp(C, S, 1, false, HEADER);
    let mut seq = 1 + HEADER.len() as u32;
    let big = format!(
        "<message to='a@b'><body>{}</body></message>",
        "j".repeat(8900)
    );
    f.tcp(C, S, seq, false, big.as_bytes());
    seq += big.len() as u32;
    assert!(f.infos.iter().any(|i| i.starts_with("MESSAGE > a@b \"jjj")));
    // …and one cut by a small snaplen: a gap, a note, and the next stanza.
    let cut = tcp_frame(C, S, seq, false, big.as_bytes());
    f.frame(&cut[..200], cut.len() as u32);
    seq += big.len() as u32;
    f.tcp(C, S, seq, false, b"<presence type='unavailable'/>");
    assert!(f.has(NoteKind::TcpTruncated) || f.has(NoteKind::TcpGap));
    assert!(
        f.infos.iter().any(|i| i == "PRESENCE unavailable"),
        "{:?}",
        f.infos
    );
}

/// Every capture cut short, at many points (every byte of the first 200,
/// then a stride through the file): read without panic; a cut inside a
/// record is reported as such with everything before it kept.
#[test]
fn truncation_sweep_over_every_capture() {
    use xmppscope::capture::{End, FileSource};
    let mut files: Vec<std::path::PathBuf> =
        std::fs::read_dir(crate::util::root().join("captures"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
    if let Some(shared) = crate::util::shared() {
        files.extend(
            std::fs::read_dir(shared.join("captures/public"))
                .unwrap()
                .map(|e| e.unwrap().path()),
        );
    }
    files.retain(|p| {
        let n = p.to_string_lossy();
        n.ends_with(".pcap") || n.ends_with(".pcapng")
    });
    assert!(files.len() >= 3, "{files:?}");
    let dir = tempfile::tempdir().unwrap();
    let cut_path = dir.path().join("cut");
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let stride = (bytes.len() / 150).max(1);
        let points = (0..200.min(bytes.len())).chain((200..bytes.len()).step_by(stride));
        let mut truncated_seen = 0;
        for n in points {
            std::fs::write(&cut_path, &bytes[..n]).unwrap();
            let Ok(mut src) = FileSource::open(cut_path.to_str().unwrap()) else {
                continue; // too short to be a capture: an error, not a panic
            };
            let lt = src.linktype();
            let mut d = Dissector::new(Config::default());
            let mut p = Packet::default();
            let mut frames = 0;
            loop {
                match src.next_frame() {
                    Ok(Some(f)) => {
                        frames += 1;
                        d.dissect(f.number, f.ts, lt, f.data, f.len, &mut p);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let end = FileSource::classify(&e);
                        assert!(
                            matches!(end, Some(End::Truncated(_))),
                            "{}: cut at {n}: {e}",
                            file.display()
                        );
                        truncated_seen += 1;
                        break;
                    }
                }
            }
            d.finish(frames);
        }
        assert!(
            truncated_seen > 0,
            "{}: no cut inside a record was reported",
            file.display()
        );
    }
}

/// Regressions found by the 1 GB truth check: a capture that begins
/// mid-session with a whitespace keepalive, and a direct-TLS flow whose
/// first segment holds only two bytes of a record header.
#[test]
fn midstream_flows_starting_with_a_keepalive_or_half_a_tls_header() {
    let mut f = Feed::new(Config::default());
    f.tcp(C, S, 5000, false, b" ");
    f.tcp(
        C,
        S,
        5001,
        false,
        b"<message to='a@b'><body>hi</body></message>",
    );
    assert_eq!(f.infos, ["Whitespace Keepalive", "MESSAGE > a@b \"hi\""]);
    assert!(!f.has(NoteKind::NotXmpp));
    let tls_server = ([203, 0, 113, 6], 5223);
    f.tcp(C2, tls_server, 7000, false, &[0x16, 0x03]);
    f.tcp(
        C2,
        tls_server,
        7002,
        false,
        &[0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00],
    );
    assert!(!f.has(NoteKind::NotXmpp), "{:?}", f.notes);
}

/// Many small units the fast reader leaves to the framer (comments, which
/// XMPP forbids, and elements with bytes that are not UTF-8) between plain
/// ones, in full-size segments and behind a hole: all are framed, the next
/// flow is read. How much UTF-8 checking each delivery costs is counted in
/// `dissect`'s `valid_from_checks_each_byte_once`.
#[test]
fn thousands_of_declined_units_in_one_delivery_stay_linear() {
    for unit in [
        &b"<!----><a/>"[..],
        &b"<a>\xff</a><b/>"[..],
        &b"<c/><a/>"[..],
    ] {
        let start = std::time::Instant::now();
        let mut f = Feed::new(Config::default());
        f.tcp(C, S, 0, true, b"");
        f.tcp(C, S, 1, false, HEADER);
        let first = 1 + HEADER.len() as u32;
        // 3 MiB out of order behind a one-byte hole, then the hole.
        let body: Vec<u8> = unit.repeat((3 << 20) / unit.len());
        let mut seq = first + 1;
        for c in body.chunks(60_000) {
            f.tcp(C, S, seq, false, c);
            seq += c.len() as u32;
        }
        f.tcp(C, S, first, false, b" ");
        let mut g = good_flow_start(&mut f);
        g = good_flow_message(&mut f, g, 1);
        let _ = g;
        assert!(
            f.infos.iter().any(|i| i.contains("fine 1")),
            "{:?}",
            &f.infos[f.infos.len().saturating_sub(5)..]
        );
        // Under a second in a release build; the bound only catches a
        // blow-up, it measures nothing.
        let took = start.elapsed();
        assert!(
            took.as_secs() < 30,
            "{took:?} for {} units",
            body.len() / unit.len()
        );
    }
}

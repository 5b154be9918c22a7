//! The counts-only dissector (`-q --stats`, [`Config::counts_only`]) skips
//! what the statistics do not read: its figures and its expert notes (kinds
//! and texts) must be the full dissector's, capture by capture.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use xmppscope::capture::FileSource;
use xmppscope::dissect::{Config, Dissector};
use xmppscope::keylog::KeyLog;
use xmppscope::model::{EventKind, Note, Packet};
use xmppscope::output::stats::Stats;

use crate::util;

/// What a run over a whole capture gives: the statistics (as JSON, every
/// field), every note in order, how many stanzas came with an Info and how
/// many as tallies.
struct Counted {
    stats: Value,
    notes: Vec<(String, String)>,
    stanzas: u64,
    stanzas_with_info: u64,
    tallied: u64,
    /// Stanza events without a note, in the frame that completed them (a
    /// flow flushed outside a frame reports events in any mode).
    quiet_events: u64,
}

/// Dissect `path` as the binary does, counting events, frame notes and
/// the flushed ones (idle, evicted, end of capture).
fn count(path: &Path, cfg: Config) -> Counted {
    let mut src = FileSource::open(path.to_str().unwrap()).unwrap();
    let lt = src.linktype();
    let mut d = Dissector::new(cfg);
    let mut stats = Stats::default();
    let mut notes = Vec::new();
    let (mut stanzas, mut stanzas_with_info, mut tallied, mut quiet_events) = (0, 0, 0, 0);
    let mut tally = |events: &[xmppscope::model::Event],
                     tallies: &[xmppscope::model::Tally],
                     frame_notes: &[Note],
                     in_frame: bool| {
        for t in tallies {
            stats.add_tally(t);
            stanzas += 1;
            tallied += 1;
        }
        for e in events {
            stats.add_event(e);
            notes.extend(e.notes.iter().map(|n| (n.kind.name(), n.text.clone())));
            if e.kind == EventKind::Stanza {
                stanzas += 1;
                stanzas_with_info += u64::from(!e.info.is_empty());
                quiet_events += u64::from(in_frame && e.notes.is_empty());
            }
        }
        for n in frame_notes {
            stats.add_note(n);
            notes.push((n.kind.name(), n.text.clone()));
        }
    };
    let mut p = Packet::default();
    let mut last = 0;
    while let Some(f) = src.next_frame().unwrap() {
        d.dissect(f.number, f.ts, lt, f.data, f.len, &mut p);
        last = f.number;
        tally(&p.events, &p.tallies, &p.notes, true);
        let (ev, ns) = d.take_flushed();
        tally(&ev, &[], &ns, false);
    }
    d.finish(last);
    let (ev, ns) = d.take_flushed();
    tally(&ev, &[], &ns, false);
    stats.set_counters(d.counters());
    Counted {
        stats: serde_json::to_value(&stats).unwrap(),
        notes,
        stanzas,
        stanzas_with_info,
        tallied,
        quiet_events,
    }
}

/// Full and counts-only runs of `path` agree; returns the stanzas seen.
fn same_counts(path: &Path, cfg: &Config) -> u64 {
    let full = count(path, cfg.clone());
    let counts = count(
        path,
        Config {
            counts_only: true,
            ..cfg.clone()
        },
    );
    let what = path.display();
    assert_eq!(full.stats, counts.stats, "{what}: statistics differ");
    assert_eq!(full.notes, counts.notes, "{what}: expert notes differ");
    assert_eq!(full.stanzas, counts.stanzas, "{what}: stanzas differ");
    // The mode is in effect: no stanza Info built, where the full run
    // built one for every stanza.
    assert_eq!(
        counts.stanzas_with_info, 0,
        "{what}: counts-only built Info"
    );
    assert_eq!(full.stanzas_with_info, full.stanzas, "{what}");
    // Tallies only from the counts-only run: there every stanza without a
    // note is one (one with a note, an IQ request forgotten at the limit
    // say, keeps its event).
    assert_eq!(full.tallied, 0, "{what}");
    assert_eq!(
        counts.quiet_events, 0,
        "{what}: stanza events without notes"
    );
    assert_eq!(
        counts.tallied, full.quiet_events,
        "{what}: tallies against the full run's stanzas without notes"
    );
    full.stanzas
}

/// The repository's captures, decrypted where a key log comes with them.
#[test]
fn counts_only_matches_full_on_the_repository_captures() {
    let caps = util::captures(&util::root().join("captures"));
    assert!(!caps.is_empty());
    let mut stanzas = 0;
    for cap in &caps {
        stanzas += same_counts(cap, &Config::default());
        let keys = cap.with_extension("keys");
        if keys.is_file() {
            let cfg = Config {
                keylog: Some(Arc::new(KeyLog::open(&keys).unwrap())),
                ..Config::default()
            };
            stanzas += same_counts(cap, &cfg);
        }
    }
    assert!(stanzas > 0, "no stanza in the repository's captures");
}

/// The public captures, with the odd ports they use treated as XMPP.
#[test]
fn counts_only_matches_full_on_the_public_captures() {
    let Some(shared) = util::shared() else { return };
    let caps = util::captures(&shared.join("captures/public"));
    for cap in &caps {
        same_counts(cap, &Config::default());
        let cfg = Config {
            xmpp_ports: vec![1299, 7400],
            ..Config::default()
        };
        same_counts(cap, &cfg);
    }
}

/// Generated traffic, cut anywhere, reordered and retransmitted.
#[test]
fn counts_only_matches_full_on_generated_traffic() {
    let Some(shared) = util::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (cap, _) = util::generate(
        &shared,
        dir.path(),
        "counts.pcap",
        &[
            "--size-mb",
            "2",
            "--seed",
            "5",
            "--split-anywhere",
            "--split",
            "0.3",
            "--ooo",
            "0.05",
            "--retx",
            "0.02",
        ],
    );
    assert!(same_counts(&cap, &Config::default()) > 1000);
}

/// A hand-built session with what generated traffic lacks: IQ requests
/// left unanswered and past the pending limit (their notes name what was
/// asked, an Info a counts-only run builds for them alone), `type` values
/// no RFC defines, stanza and stream errors, SASL, and elements counted by
/// their Info.
#[test]
fn counts_only_matches_full_on_unanswered_and_unusual_stanzas() {
    const C: ([u8; 4], u16) = ([10, 0, 0, 1], 40000);
    const S: ([u8; 4], u16) = ([10, 0, 0, 2], 5222);
    let client = [
        "<?xml version='1.0'?><stream:stream to='example.com' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>",
        "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
        "<iq type='get' id='p1' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>",
        "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
        "<iq type='get' id='d1' to='example.com'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        "<message to='romeo@example.net' type='chat'><body>hi</body><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        "<message to='romeo@example.net' type='odd'><gone xmlns='http://jabber.org/protocol/chatstates'/></message>",
        "<presence type='weird'><status>x</status></presence>",
        "<presence/>",
        "<iq type='strange' id='s1'/>",
        "<r xmlns='urn:xmpp:sm:3'/>",
        "<foo xmlns='urn:example:foo' to='example.com'/>",
        " ",
        "</stream:stream>",
    ];
    let server = [
        "<?xml version='1.0'?><stream:stream from='example.com' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' id='s'>",
        "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
        "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
        "<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>juliet@example.com/r</jid></bind></iq>",
        "<iq type='error' id='d1' from='example.com'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        "<iq type='get' id='q1' from='example.com'><query xmlns='jabber:iq:version'/></iq>",
        "<a xmlns='urn:xmpp:sm:3' h='3'/>",
        "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
    ];
    let mut frames = vec![util::tcp_frame(C, S, 0, true, b"")];
    let (mut cseq, mut sseq) = (1u32, 1u32);
    for i in 0..client.len().max(server.len()) {
        if let Some(x) = client.get(i) {
            frames.push(util::tcp_frame(C, S, cseq, false, x.as_bytes()));
            cseq += u32::try_from(x.len()).unwrap();
        }
        if let Some(x) = server.get(i) {
            if i == 0 {
                frames.push(util::tcp_frame(S, C, 0, true, b""));
            }
            frames.push(util::tcp_frame(S, C, sseq, false, x.as_bytes()));
            sseq += u32::try_from(x.len()).unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("unanswered.pcap");
    std::fs::write(&cap, util::classic_pcap(&frames, 1000)).unwrap();
    let mut cfg = Config::default();
    cfg.limits.max_pending_iqs = 2;
    same_counts(&cap, &cfg);
    same_counts(&cap, &Config::default());
    let full = count(&cap, cfg);
    for kind in ["limit_pending_iqs", "iq_without_response", "stanza_error"] {
        assert!(
            full.notes.iter().any(|(k, _)| k == kind),
            "no {kind} note to compare: {:?}",
            full.notes
        );
    }
    // The unanswered request's note names what was asked.
    assert!(
        full.notes
            .iter()
            .any(|(_, t)| t.contains("IQ(get) QUERY(jabber:iq:version) < example.com")),
        "{:?}",
        full.notes
    );
    for (field, key) in [
        ("message_types", "odd"),
        ("presence_types", "weird"),
        ("iq_types", "strange"),
        ("sasl_auths", "PLAIN"),
        ("other_elements", "SM r"),
    ] {
        assert_eq!(full.stats[field][key], 1, "{field} {key}: {}", full.stats);
    }
}

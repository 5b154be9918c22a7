//! Golden tests: every public capture in ../shared against what Wireshark
//! 4.0.17 shows (`*.tshark.txt`, see ../shared/captures/public/SOURCES.md).
//!
//! For each capture: the frames where xmppscope reports XMPP on the port
//! that tshark dissected equal tshark's frames, and the first word of each
//! Info agrees. The `decode-as-PORT` oracles are matched with no flag at all.
//!
//! Where tshark is wrong, the test says so and asserts the right answer:
//! - tshark's XMPP reassembly takes a PDU as complete when a segment ends in
//!   `>`, so a stanza cut after a `/>` is dissected half in one frame and the
//!   rest is `UNKNOWN PACKET` in the next ([`TSHARK_HALF_STANZAS`]); the right
//!   answer is one event, in the frame that completes the stanza.
//! - tshark names `UNKNOWN PACKET` what it cannot decode (XEP-0198 stream
//!   management, XEP-0352 CSI, XEP-0114 handshake, jabberd's component
//!   traffic); xmppscope names the element, so there the first word must be
//!   anything but `UNKNOWN`.

use std::collections::BTreeMap;
use std::path::Path;

use xmppscope::dissect::Config;
use xmppscope::model::{EventKind, Proto};

use crate::util;

/// One line of a `.tshark.txt`: frame → first word of Info (without the
/// `[TCP …]` annotations tshark puts in front).
fn oracle(path: &Path) -> BTreeMap<u64, (u16, u16, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let frame: u64 = f[0].parse().unwrap();
        let sport: u16 = f[3].parse().unwrap();
        let dport: u16 = f[6].parse().unwrap();
        let mut info = f[8].trim();
        while let Some(rest) = info.strip_prefix('[') {
            info = rest.split_once(']').map_or("", |(_, r)| r).trim_start();
        }
        let word = info.split_whitespace().next().unwrap_or("").to_owned();
        out.insert(frame, (sport, dport, word));
    }
    out
}

/// Our view: frame → first word of every item, for frames reporting XMPP
/// on `port`. tshark shows one item per packet (sometimes the first,
/// sometimes the last stanza); xmppscope shows all of them.
fn ours(capture: &Path, port: u16) -> BTreeMap<u64, Vec<String>> {
    let run = util::dissect(capture, Config::default());
    let mut out = BTreeMap::new();
    for p in &run.packets {
        if p.proto() != Proto::Xmpp || (p.sport != port && p.dport != port) {
            continue;
        }
        let words = p
            .events
            .iter()
            .filter(|e| e.kind != EventKind::Tls)
            .map(|e| e.info.split_whitespace().next().unwrap_or("").to_owned())
            .collect();
        out.insert(p.number, words);
    }
    out
}

/// (capture, frame where tshark dissected half a stanza, frame that completes
/// it). Checked by hand with `tshark -x`: c2s-plaintext frames 46–48 and
/// 130–132 carry one disco#info result of about 4 KB whose second segment
/// ends right after a `<feature …/>`.
const TSHARK_HALF_STANZAS: &[(&str, u64, u64)] = &[
    ("c2s-plaintext-sasl-disco-ndpi-jabber.pcap", 47, 48),
    ("c2s-plaintext-sasl-disco-ndpi-jabber.pcap", 131, 132),
];

fn check(capture: &str, oracle_file: &str, port: u16) {
    let Some(shared) = util::shared() else { return };
    let dir = shared.join("captures/public");
    // A decode-as oracle also lists the 5222 frames: keep this port's.
    let mut want: BTreeMap<u64, (u16, u16, String)> = oracle(&dir.join(oracle_file))
        .into_iter()
        .filter(|(_, (s, d, _))| *s == port || *d == port)
        .collect();
    // Correct tshark's half stanzas: the stanza belongs to the frame that
    // completes it, which tshark calls UNKNOWN.
    for (cap, half, whole) in TSHARK_HALF_STANZAS {
        if *cap == capture {
            let (s, d, word) = want.remove(half).expect("oracle has the half-stanza frame");
            eprintln!(
                "{capture}: tshark dissects half a stanza in frame {half}; it completes in {whole}"
            );
            want.insert(*whole, (s, d, word));
        }
    }
    let got = ours(&dir.join(capture), port);
    let want_frames: Vec<u64> = want.keys().copied().collect();
    let got_frames: Vec<u64> = got.keys().copied().collect();
    assert_eq!(
        got_frames, want_frames,
        "{capture}: frames with XMPP on port {port} differ from tshark's"
    );
    let mut tshark_wrong = Vec::new();
    for (frame, (_, _, word)) in &want {
        let mine = &got[frame];
        if word == "UNKNOWN" {
            // tshark could not name it; we must.
            assert!(
                mine.iter().all(|w| w != "UNKNOWN" && !w.is_empty()),
                "{capture} frame {frame}: {mine:?}"
            );
            tshark_wrong.push((*frame, mine.clone()));
        } else {
            assert!(
                mine.contains(word),
                "{capture} frame {frame}: tshark says {word}, xmppscope {mine:?}"
            );
        }
    }
    if !tshark_wrong.is_empty() {
        eprintln!("{capture}: tshark says UNKNOWN PACKET where xmppscope names {tshark_wrong:?}");
    }
}

#[test]
fn c2s_plaintext_sasl_disco_ndpi_jabber() {
    check(
        "c2s-plaintext-sasl-disco-ndpi-jabber.pcap",
        "c2s-plaintext-sasl-disco-ndpi-jabber.pcap.tshark.txt",
        5222,
    );
}

#[test]
fn c2s_starttls_jabber_ccc_de() {
    check(
        "c2s-starttls-jabber-ccc-de-zeek.pcap",
        "c2s-starttls-jabber-ccc-de-zeek.pcap.tshark.txt",
        5222,
    );
}

#[test]
fn s2s_5269_dialback_with_no_flag() {
    check(
        "s2s-5269-dialback-starttls-zeek.pcap",
        "s2s-5269-dialback-starttls-zeek.pcap.decode-as-5269.tshark.txt",
        5269,
    );
}

#[test]
fn sll_c2s_on_5222() {
    check(
        "sll-loopback-c2s-and-xep0114-component-xmpptrace.pcap",
        "sll-loopback-c2s-and-xep0114-component-xmpptrace.pcap.tshark.txt",
        5222,
    );
}

#[test]
fn sll_xep0114_components_on_7400_with_no_flag() {
    check(
        "sll-loopback-c2s-and-xep0114-component-xmpptrace.pcap",
        "sll-loopback-c2s-and-xep0114-component-xmpptrace.pcap.decode-as-7400.tshark.txt",
        7400,
    );
}

#[test]
fn midstream_xiaomi_ping() {
    check(
        "sll-midstream-xiaomi-push-ping-ndpi-kakaotalk.pcap",
        "sll-midstream-xiaomi-push-ping-ndpi-kakaotalk.pcap.tshark.txt",
        5222,
    );
}

#[test]
fn odd_port_1299_with_no_flag() {
    check(
        "odd-port1299-stream-header-no-attr-space-ndpi-fake.pcapng",
        "odd-port1299-stream-header-no-attr-space-ndpi-fake.pcapng.decode-as-1299.tshark.txt",
        1299,
    );
}

/// The negative controls: binary protocols on 5222 are not XMPP.
#[test]
fn negatives_yield_no_xmpp() {
    let Some(shared) = util::shared() else { return };
    let dir = shared.join("captures/public");
    for cap in [
        "negative-5222-whatsapp-noise-binary-ndpi.pcap",
        "negative-5222-xiaomi-binary-push-ndpi.pcap",
    ] {
        let run = util::dissect(&dir.join(cap), Config::default());
        let xmpp: Vec<u64> = run
            .packets
            .iter()
            .filter(|p| p.proto() == Proto::Xmpp)
            .map(|p| p.number)
            .collect();
        assert!(xmpp.is_empty(), "{cap}: XMPP reported in frames {xmpp:?}");
        assert_eq!(run.stats.xmpp_flows, 0, "{cap}");
        assert!(
            run.stats.notes.get("not_xmpp").copied().unwrap_or(0) > 0,
            "{cap}: the user must be told why port 5222 is not XMPP"
        );
    }
}

/// Frame numbers are every record in the file, 1-based, like tshark's.
#[test]
fn frame_numbers_count_every_record() {
    let Some(shared) = util::shared() else { return };
    let dir = shared.join("captures/public");
    let run = util::dissect(
        &dir.join("c2s-plaintext-sasl-disco-ndpi-jabber.pcap"),
        Config::default(),
    );
    assert_eq!(run.packets.len(), 376);
    assert!(
        run.packets
            .iter()
            .enumerate()
            .all(|(i, p)| p.number == i as u64 + 1)
    );
}

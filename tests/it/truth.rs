//! Truth tests: captures made by ../shared/bench/gen-xmpp-pcap, whose truth
//! JSON says exactly what a correct dissector must find, checked against
//! `--stats` (the same counters the binary prints).

use std::path::Path;

use serde_json::Value;
use xmppscope::dissect::Config;
use xmppscope::output::stats::Stats;

use crate::util;

fn n(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("truth has no number at {path:?}"))
}

fn by(map: &std::collections::BTreeMap<String, u64>, k: &str) -> u64 {
    map.get(k).copied().unwrap_or(0)
}

/// Compare every field the truth file defines for XMPP on 5222.
fn assert_matches_truth(s: &Stats, t: &Value, what: &str) {
    let x = &t["xmpp"];
    let pairs: Vec<(&str, u64, u64)> = vec![
        ("packets", s.packets, n(t, &["packets"])),
        (
            "tcp_flows_5222",
            s.tcp_flows_5222,
            n(x, &["tcp_flows_5222"]),
        ),
        ("message", s.messages, n(x, &["stanzas", "message"])),
        ("presence", s.presences, n(x, &["stanzas", "presence"])),
        ("iq", s.iqs, n(x, &["stanzas", "iq"])),
        (
            "message chat",
            by(&s.message_types, "chat"),
            n(x, &["message_types", "chat"]),
        ),
        (
            "message normal",
            by(&s.message_types, "normal"),
            n(x, &["message_types", "normal"]),
        ),
        (
            "message headline",
            by(&s.message_types, "headline"),
            n(x, &["message_types", "headline"]),
        ),
        (
            "message groupchat",
            by(&s.message_types, "groupchat"),
            n(x, &["message_types", "groupchat"]),
        ),
        ("iq get", by(&s.iq_types, "get"), n(x, &["iq_types", "get"])),
        ("iq set", by(&s.iq_types, "set"), n(x, &["iq_types", "set"])),
        (
            "iq result",
            by(&s.iq_types, "result"),
            n(x, &["iq_types", "result"]),
        ),
        (
            "iq error",
            by(&s.iq_types, "error"),
            n(x, &["iq_types", "error"]),
        ),
        (
            "messages_with_body",
            s.messages_with_body,
            n(x, &["messages_with_body"]),
        ),
        (
            "body_decoded_bytes",
            s.body_decoded_bytes,
            n(x, &["body_decoded_bytes"]),
        ),
        (
            "chatstate_messages",
            s.chatstate_messages,
            n(x, &["chatstate_messages"]),
        ),
        (
            "chatstate_only_messages",
            s.chatstate_only_messages,
            n(x, &["chatstate_only_messages"]),
        ),
        (
            "active",
            by(&s.chatstates, "active"),
            n(x, &["chatstates", "active"]),
        ),
        (
            "composing",
            by(&s.chatstates, "composing"),
            n(x, &["chatstates", "composing"]),
        ),
        (
            "paused",
            by(&s.chatstates, "paused"),
            n(x, &["chatstates", "paused"]),
        ),
        (
            "inactive",
            by(&s.chatstates, "inactive"),
            n(x, &["chatstates", "inactive"]),
        ),
        (
            "gone",
            by(&s.chatstates, "gone"),
            n(x, &["chatstates", "gone"]),
        ),
        ("iq_pings", s.iq_pings, n(x, &["iq_pings"])),
        (
            "roster_results",
            s.roster_results,
            n(x, &["roster_results"]),
        ),
        ("roster_items", s.roster_items, n(x, &["roster_items"])),
        (
            "presence_unavailable",
            s.presence_unavailable,
            n(x, &["presence_unavailable"]),
        ),
        (
            "presence_with_status",
            s.presence_with_status,
            n(x, &["presence_with_status"]),
        ),
        (
            "stream_headers_c2s",
            s.stream_headers_c2s,
            n(x, &["stream_headers_c2s"]),
        ),
        (
            "stream_headers_s2c",
            s.stream_headers_s2c,
            n(x, &["stream_headers_s2c"]),
        ),
        (
            "stream_features",
            s.stream_features,
            n(x, &["stream_features"]),
        ),
        (
            "sasl_plain_auths",
            s.sasl_plain_auths,
            n(x, &["sasl_plain_auths"]),
        ),
        (
            "sasl_successes",
            s.sasl_successes,
            n(x, &["sasl_successes"]),
        ),
        (
            "stream_closes_c2s",
            s.stream_closes_c2s,
            n(x, &["stream_closes_c2s"]),
        ),
        (
            "stream_closes_s2c",
            s.stream_closes_s2c,
            n(x, &["stream_closes_s2c"]),
        ),
        ("stream_errors", s.stream_errors, n(x, &["stream_errors"])),
        (
            "whitespace_keepalives",
            s.whitespace_keepalives,
            n(x, &["whitespace_keepalives"]),
        ),
    ];
    let wrong: Vec<String> = pairs
        .iter()
        .filter(|(_, got, want)| got != want)
        .map(|(k, got, want)| format!("{k}: got {got}, truth {want}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "{what}: differs from the truth file:\n{}",
        wrong.join("\n")
    );
    assert!(
        s.limits_hit.is_empty(),
        "{what}: limits hit {:?}",
        s.limits_hit
    );
    assert_eq!(s.malformed_elements, 0, "{what}: malformed elements");
}

fn truth_case(name: &str, args: &[&str]) {
    let Some(shared) = util::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (cap, truth) = util::generate(&shared, dir.path(), name, args);
    let run = util::dissect(Path::new(&cap), Config::default());
    assert_matches_truth(&run.stats, &truth, name);
}

#[test]
fn truth_5mb_seed1_ethernet_pcap() {
    truth_case("s1.pcap", &["--size-mb", "5", "--seed", "1"]);
}

#[test]
fn truth_split_anywhere_reordered_retransmitted() {
    truth_case(
        "hard.pcap",
        &[
            "--size-mb",
            "5",
            "--seed",
            "2",
            "--split-anywhere",
            "--split",
            "0.3",
            "--ooo",
            "0.05",
            "--retx",
            "0.02",
        ],
    );
}

#[test]
fn truth_sll_pcapng() {
    truth_case(
        "sll.pcapng",
        &[
            "--size-mb",
            "3",
            "--seed",
            "7",
            "--linktype",
            "sll",
            "--pcapng",
        ],
    );
}

#[test]
fn truth_null_loopback() {
    truth_case(
        "null.pcap",
        &["--size-mb", "3", "--seed", "7", "--linktype", "null"],
    );
}

/// The binary's `--stats -T json` prints the same counters.
#[test]
fn binary_stats_json_matches_truth() {
    let Some(shared) = util::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (cap, truth) = util::generate(
        &shared,
        dir.path(),
        "b.pcap",
        &["--size-mb", "2", "--seed", "3"],
    );
    let out = util::bin()
        .args(["-q", "--stats", "-T", "json", "-r"])
        .arg(&cap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["messages"], truth["xmpp"]["stanzas"]["message"]);
    assert_eq!(s["presences"], truth["xmpp"]["stanzas"]["presence"]);
    assert_eq!(s["iqs"], truth["xmpp"]["stanzas"]["iq"]);
    assert_eq!(
        s["chatstates"]["composing"],
        truth["xmpp"]["chatstates"]["composing"]
    );
    assert_eq!(s["tcp_flows_5222"], truth["xmpp"]["tcp_flows_5222"]);
}

/// `--threads N` splits the flows over N dissectors and merges the output
/// back into frame order: byte for byte what one thread prints, in every
/// output form: lines (rendered by the shards, names by the merge), -V
/// (flow numbers, notes), NDJSON, --expert, --stats (flows open at once
/// included), also with the idle timeout closing flows part-way (every
/// shard sweeps at the same frames).
#[test]
fn threads_give_the_same_output() {
    let Some(shared) = util::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (cap, _) = util::generate(
        &shared,
        dir.path(),
        "t.pcap",
        &[
            "--size-mb",
            "3",
            "--seed",
            "11",
            "--ooo",
            "0.05",
            "--retx",
            "0.02",
        ],
    );
    let mut captures = vec![cap];
    for d in [
        util::root().join("captures"),
        shared.join("captures/public"),
    ] {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".pcap") || name.ends_with(".pcapng") {
                captures.push(p);
            }
        }
    }
    assert!(captures.len() > 10, "{captures:?}");
    let run = |cap: &std::path::Path, args: &[&str]| {
        let out = util::bin().args(args).arg("-r").arg(cap).output().unwrap();
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), out.stdout, out.stderr)
    };
    let modes: [&[&str]; 8] = [
        &["--no-tui"],
        &["--no-tui", "-n"],
        &["--no-tui", "--stats", "--idle-timeout", "2"],
        &["-V"],
        &["-T", "ndjson"],
        &["-q", "--expert", "--stats"],
        &["-q", "--stats", "-T", "json"],
        &["-V", "--idle-timeout", "2"],
    ];
    for cap in &captures {
        for mode in modes {
            let one = run(cap, &[mode, &["--threads", "1"]].concat());
            if mode == ["--no-tui"] && cap == &captures[0] {
                assert!(one.1.split(|b| *b == b'\n').count() > 1000);
            }
            for n in ["2", "3"] {
                let many = run(cap, &[mode, &["--threads", n]].concat());
                assert!(
                    many == one,
                    "--threads {n} {mode:?} on {} differs from one thread",
                    cap.display()
                );
            }
        }
    }
}

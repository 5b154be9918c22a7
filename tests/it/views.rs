//! The story views against what the recording script says it did (the
//! `*.actions.jsonl` beside each capture), names from DNS answers, `--jid`,
//! and hand-typed (telnet-style) streams.

use std::path::Path;

use etherparse::PacketBuilder;
use serde_json::Value;
use xmppscope::dissect::{Config, Dissector};
use xmppscope::model::{Packet, Timestamp};

use crate::util;
use crate::util::tcp_frame as tcp;

const PLAIN: &str = "captures/prosody-plain-signin-chat";
const TLS: &str = "captures/prosody-starttls-signin";

fn run(args: &[&str]) -> (bool, String, String) {
    let out = util::bin()
        .current_dir(util::root())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run_ok(args: &[&str]) -> String {
    let (ok, out, err) = run(args);
    assert!(ok, "xmppscope {args:?} failed: {err}");
    out
}

fn ndjson(text: &str, kind: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == kind)
        .collect()
}

fn actions(base: &str) -> Vec<Value> {
    std::fs::read_to_string(util::root().join(format!("{base}.actions.jsonl")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `-r` (and `--keylog` for the TLS capture) for a base name.
fn read_args(base: &str) -> Vec<String> {
    let mut a = vec!["-r".to_owned(), format!("{base}.pcap")];
    let keys = format!("{base}.keys");
    if util::root().join(&keys).exists() {
        a.push("--keylog".into());
        a.push(keys);
    }
    a
}

fn with(base: &str, extra: &[&str]) -> String {
    let mut a = read_args(base);
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    run_ok(&refs)
}

fn st(v: &Value) -> String {
    v.as_str().unwrap_or("").to_owned()
}

#[test]
fn transcript_equals_the_action_log() {
    for base in [PLAIN, TLS] {
        let log = actions(base);
        let json: Value =
            serde_json::from_str(&with(base, &["--transcript", "-T", "json"])).unwrap();
        let convs = json["conversations"].as_array().unwrap();
        let entries: Vec<&Value> = convs
            .iter()
            .flat_map(|c| c["entries"].as_array().unwrap())
            .collect();
        let got_msgs: Vec<(String, String, String)> = entries
            .iter()
            .filter(|e| e["type"] == "message")
            .map(|e| (st(&e["from"]), st(&e["to"]), st(&e["body"])))
            .collect();
        let want_msgs: Vec<(String, String, String)> = log
            .iter()
            .filter(|a| a["action"] == "send_message")
            .map(|a| (st(&a["actor"]), st(&a["to"]), st(&a["body"])))
            .collect();
        assert_eq!(got_msgs, want_msgs, "{base}");
        let got_states: Vec<(String, String)> = entries
            .iter()
            .filter(|e| e["type"] == "chat_state")
            .map(|e| (st(&e["from"]), st(&e["state"])))
            .collect();
        let want_states: Vec<(String, String)> = log
            .iter()
            .filter(|a| a["action"] == "chat_state")
            .map(|a| (st(&a["actor"]), st(&a["state"])))
            .collect();
        assert_eq!(got_states, want_states, "{base}");
        // Times follow the log (the capture started before the first action).
        let t0 = log[0]["t"].as_f64().unwrap();
        let first_msg_log = log.iter().find(|a| a["action"] == "send_message").unwrap()["t"]
            .as_f64()
            .unwrap();
        let first_msg = entries.iter().find(|e| e["type"] == "message").unwrap()["t"]
            .as_f64()
            .unwrap();
        let first_state = entries.iter().find(|e| e["type"] == "chat_state").unwrap()["t"]
            .as_f64()
            .unwrap();
        // The gap between the first typing and the first message matches.
        let first_state_log = log.iter().find(|a| a["action"] == "chat_state").unwrap()["t"]
            .as_f64()
            .unwrap();
        let d_log = first_msg_log - first_state_log;
        assert!(((first_msg - first_state) - d_log).abs() < 0.05, "{base}");
        assert!(first_msg_log > t0);
    }
    // Plain text and Markdown say the same, with typing inline and
    // entities decoded.
    let text = with(PLAIN, &["--transcript"]);
    assert!(text.contains("alice@localhost is typing…"), "{text}");
    assert!(text.contains("alice@localhost paused"), "{text}");
    assert!(
        text.contains("bob@localhost: Café « Zoë »: fish & chips <10 € — ça marche? 🍟"),
        "{text}"
    );
    let md = with(PLAIN, &["--transcript", "--transcript-format", "markdown"]);
    assert!(
        md.starts_with("## alice@localhost ↔ bob@localhost (3 messages)"),
        "{md}"
    );
    assert!(md.contains("**alice@localhost**: Hi Bob!"), "{md}");
}

#[test]
fn timeline_equals_the_action_log() {
    for base in [PLAIN, TLS] {
        let log = actions(base);
        let tl = ndjson(&with(base, &["--timeline", "-T", "ndjson"]), "timeline");
        for actor in ["alice@localhost", "bob@localhost"] {
            let want: Vec<(String, String)> = log
                .iter()
                .filter(|a| a["actor"] == actor)
                .filter(|a| a["action"] == "presence" || a["action"] == "signout")
                .map(|a| {
                    let show = if a["type"] == "unavailable" {
                        "unavailable".to_owned()
                    } else if a["show"].is_string() {
                        st(&a["show"])
                    } else {
                        "available".to_owned()
                    };
                    (show, st(&a["status"]))
                })
                .collect();
            let c = tl.iter().find(|c| c["jid"] == actor).unwrap();
            let got: Vec<(String, String)> = c["presence"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["from_server"] != true)
                .map(|p| (st(&p["show"]), st(&p["status"])))
                .collect();
            assert_eq!(got, want, "{base} {actor}");
            // Typing episodes: one per composing, ended by what came next.
            let composing = log
                .iter()
                .filter(|a| a["actor"] == actor && a["state"] == "composing")
                .filter(|a| a["action"] == "chat_state")
                .count();
            let typing = c["typing"].as_array().unwrap();
            assert_eq!(typing.len(), composing, "{base} {actor}");
            assert!(typing.iter().all(|t| t["duration"].as_f64().unwrap() > 0.2));
        }
        // alice wrote to bob, who started typing ~0.3 s later and replied.
        let bob = tl.iter().find(|c| c["jid"] == "bob@localhost").unwrap();
        let lat = &bob["latency"][0];
        assert_eq!(lat["peer"], "alice@localhost");
        let c = lat["composing_after"].as_f64().unwrap();
        let r = lat["reply_after"].as_f64().unwrap();
        assert!(c > 0.2 && c < 0.5 && r > c && r < 1.0, "{lat}");
    }
    let text = with(PLAIN, &["--timeline"]);
    assert!(text.contains("away         \"in a meeting\""), "{text}");
}

#[test]
fn roster_equals_the_action_log() {
    for base in [PLAIN, TLS] {
        let log = actions(base);
        let items = ndjson(&with(base, &["--roster", "-T", "ndjson"]), "roster_item");
        for a in log.iter().filter(|a| a["action"] == "roster") {
            let account = st(&a["actor"]);
            let mut want: Vec<(String, String, Value, String)> = a["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    (
                        st(&i["jid"]),
                        st(&i["name"]),
                        i["groups"].clone(),
                        st(&i["subscription"]),
                    )
                })
                .collect();
            want.sort_by(|x, y| x.0.cmp(&y.0));
            let got: Vec<(String, String, Value, String)> = items
                .iter()
                .filter(|i| i["account"] == account.as_str())
                .map(|i| {
                    (
                        st(&i["contact"]),
                        st(&i["name"]),
                        i["groups"].clone(),
                        st(&i["subscription"]),
                    )
                })
                .collect();
            assert_eq!(got, want, "{base} {account}");
        }
        // The last presence seen of bob is his sign-out.
        let bob = items
            .iter()
            .find(|i| i["account"] == "alice@localhost" && i["contact"] == "bob@localhost")
            .unwrap();
        assert_eq!(bob["last_presence"], "unavailable");
    }
}

#[test]
fn signin_steps_match_the_action_log() {
    for base in [PLAIN, TLS] {
        let log = actions(base);
        let flows = ndjson(&with(base, &["--signin", "-T", "ndjson"]), "signin");
        let signins: Vec<&Value> = log.iter().filter(|a| a["action"] == "signin").collect();
        assert_eq!(flows.len(), signins.len(), "{base}");
        for (f, a) in flows.iter().zip(&signins) {
            assert_eq!(f["missing"].as_array().unwrap().len(), 0, "{base}: {f}");
            let steps = f["steps"].as_array().unwrap();
            let find = |name: &str| {
                steps
                    .iter()
                    .filter(|s| s["step"] == name)
                    .map(|s| st(&s["detail"]))
                    .collect::<Vec<_>>()
            };
            assert_eq!(find("bind"), vec![st(&a["jid"])]);
            assert_eq!(
                find("SASL"),
                vec![
                    format!("mechanism {}", st(&a["mechanism"])),
                    "success".into()
                ]
            );
            let items = log
                .iter()
                .find(|x| x["action"] == "roster" && x["actor"] == a["actor"])
                .unwrap()["items"]
                .as_array()
                .unwrap()
                .len();
            assert_eq!(find("roster"), vec![format!("{items} items")]);
            // Every step after the connect, in time order, with its wait.
            let ats: Vec<f64> = steps.iter().map(|s| s["at"].as_f64().unwrap()).collect();
            assert!(ats.windows(2).all(|w| w[0] <= w[1]), "{ats:?}");
            if base == TLS {
                assert!(
                    find("TLS handshake")
                        .iter()
                        .any(|d| d.contains("TLSv1.3 TLS_AES_256_GCM_SHA384")),
                    "{f}"
                );
                assert_eq!(find("features")[0], "STARTTLS required");
            }
        }
    }
    // Without the keys the steps inside TLS are marked missing.
    let text = run_ok(&["-r", &format!("{TLS}.pcap"), "--signin"]);
    assert!(text.contains("bind               MISSING"), "{text}");
}

#[test]
fn jid_keeps_only_that_accounts_flows() {
    let all = run_ok(&["-r", &format!("{PLAIN}.pcap"), "-T", "ndjson"]);
    let bob = run_ok(&[
        "-r",
        &format!("{PLAIN}.pcap"),
        "-T",
        "ndjson",
        "--jid",
        "bob@localhost",
    ]);
    let flows = |t: &str| {
        t.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter_map(|v| v["flow"].as_u64())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(flows(&all).len(), 2);
    assert_eq!(flows(&bob), [1].into_iter().collect());
    let full = run_ok(&[
        "-r",
        &format!("{PLAIN}.pcap"),
        "--signin",
        "--jid",
        "alice@localhost/balcony",
    ]);
    assert!(full.contains("(alice@localhost/balcony)") && !full.contains("bob@localhost/garden"));
}

// --- names from DNS -------------------------------------------------------

fn pcap_file(frames: &[Vec<u8>]) -> tempfile::NamedTempFile {
    let b = util::classic_pcap(frames, 0);
    let mut t = tempfile::Builder::new().suffix(".pcap").tempfile().unwrap();
    std::io::Write::write_all(&mut t, &b).unwrap();
    t
}

fn dns_answer(q: &str, addr: [u8; 4]) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
    for l in q.split('.') {
        m.push(u8::try_from(l.len()).unwrap());
        m.extend_from_slice(l.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    // q CNAME real.example.net (RFC 1035 §3.3.1), then real A addr.
    let cname_at = m.len() + 12;
    let target = [
        4, b'r', b'e', b'a', b'l', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'n', b'e',
        b't', 0,
    ];
    m.extend_from_slice(&[0xC0, 12, 0, 5, 0, 1, 0, 0, 1, 0]);
    m.extend_from_slice(&u16::try_from(target.len()).unwrap().to_be_bytes());
    m.extend_from_slice(&target);
    let p = u16::try_from(cname_at).unwrap() | 0xC000;
    m.extend_from_slice(&p.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 1, 0, 0, 4]);
    m.extend_from_slice(&addr);
    util::udp_frame([10, 0, 0, 53], [10, 0, 0, 1], 53, 33333, &m)
}

const HDR: &[u8] = b"<stream:stream to='example.org' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

#[test]
fn a_dns_answer_makes_host_name_select_that_address() {
    let c1 = ([10, 0, 0, 1], 40000);
    let c2 = ([10, 0, 0, 1], 40001);
    let s1 = ([192, 0, 2, 7], 5222);
    let s2 = ([192, 0, 2, 8], 5222);
    let f = pcap_file(&[
        dns_answer("talk.example.com", [192, 0, 2, 7]),
        tcp(c1, s1, 1, true, b""),
        tcp(c1, s1, 2, false, HDR),
        tcp(c2, s2, 1, true, b""),
        tcp(c2, s2, 2, false, HDR),
        tcp(
            c1,
            s1,
            2 + u32::try_from(HDR.len()).unwrap(),
            false,
            b"<presence/>",
        ),
    ]);
    let path = f.path().to_str().unwrap();
    let by_name = run_ok(&["-r", path, "--host", "talk.example.com", "-n"]);
    let by_addr = run_ok(&["-r", path, "--host", "192.0.2.7", "-n"]);
    assert_eq!(by_name, by_addr);
    assert_eq!(by_name.lines().count(), 2, "{by_name}");
    assert!(!by_name.contains("192.0.2.8"));
    // The CNAME target works too, and the name is shown without -n.
    assert_eq!(
        run_ok(&["-r", path, "--host", "real.example.net", "-n"]),
        by_addr
    );
    let named = run_ok(&["-r", path, "--host", "192.0.2.7"]);
    assert!(named.contains("10.0.0.1 → talk.example.com"), "{named}");
    // A name the capture does not resolve: an error listing those it does.
    let (ok, _, err) = run(&["-r", path, "--host", "talk.google.com"]);
    assert!(!ok);
    assert!(
        err.contains("talk.example.com")
            && err.contains("real.example.net")
            && err.contains("example.org"),
        "{err}"
    );
}

#[test]
fn generated_capture_dns_names_are_learnt() {
    let Some(shared) = util::shared() else { return };
    let gen_bin = shared.join("bench/gen-xmpp-pcap");
    if !gen_bin.exists() {
        eprintln!("SKIPPED: {} missing", gen_bin.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("g.pcap");
    let st = std::process::Command::new(&gen_bin)
        .args([
            "--out",
            out.to_str().unwrap(),
            "--size-mb",
            "3",
            "--seed",
            "5",
        ])
        .output()
        .unwrap();
    assert!(st.status.success());
    let (ok, _, err) = run(&["-r", out.to_str().unwrap(), "--host", "nothing.invalid"]);
    assert!(!ok);
    // A/AAAA answers of the seed-5 capture.
    for n in ["im.example.net", "cdn.example.net"] {
        assert!(err.contains(n), "{err}");
    }
    // im.example.net's A answers (the generator is deterministic for a seed,
    // generator_version 1): the name selects exactly those addresses' flows.
    let path = out.to_str().unwrap();
    let by_name = run_ok(&["-r", path, "--host", "im.example.net", "-n"]);
    let by_addr = run_ok(&[
        "-r",
        path,
        "--host",
        "203.0.113.85",
        "--host",
        "203.0.113.125",
        "-n",
    ]);
    assert_eq!(by_name, by_addr);
}

// --- hand-typed sessions ---------------------------------------------------

fn events(segments: &[&[u8]]) -> Vec<(String, String, Option<String>, Option<String>)> {
    let mut d = Dissector::new(Config::default());
    let c = ([10, 0, 0, 9], 41000);
    let s = ([10, 0, 0, 10], 5222);
    let mut p = Packet::default();
    let mut out = Vec::new();
    let mut frames = vec![tcp(c, s, 0, true, b"")];
    let mut seq = 1u32;
    for seg in segments {
        frames.push(tcp(c, s, seq, false, seg));
        seq += u32::try_from(seg.len()).unwrap();
    }
    let mut n = 0;
    for f in &frames {
        n += 1;
        // Long pauses between keystrokes: a second per segment.
        let ts = Timestamp {
            secs: n as i64,
            nanos: 0,
        };
        d.dissect(n, ts, 1, f, u32::try_from(f.len()).unwrap(), &mut p);
        out.extend(p.events.iter().map(|e| {
            (
                e.kind_name().to_owned(),
                e.info.clone(),
                e.from.clone(),
                e.to.clone(),
            )
        }));
    }
    d.finish(n);
    out.extend(d.take_flushed().0.iter().map(|e| {
        (
            e.kind_name().to_owned(),
            e.info.clone(),
            e.from.clone(),
            e.to.clone(),
        )
    }));
    out
}

#[test]
fn telnet_style_byte_per_segment_gives_the_same_events() {
    let typed: &[u8] = b"<?xml version='1.0'?>\r\n<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>\r\n<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>\r\n<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>telnet</resource></bind></iq>\r\n<presence/>\r\n<message to='bob@localhost' type='chat'><body>typed &amp; sent by hand</body><composing xmlns='http://jabber.org/protocol/chatstates'/></message>\r\n</stream:stream>\r\n";
    let at_once = events(&[typed]);
    let bytes: Vec<&[u8]> = typed.chunks(1).collect();
    let by_byte = events(&bytes);
    let without_keepalives = |v: Vec<(String, String, Option<String>, Option<String>)>| {
        v.into_iter()
            .filter(|e| e.0 != "keepalive")
            .collect::<Vec<_>>()
    };
    let a = without_keepalives(at_once);
    let b = without_keepalives(by_byte);
    assert_eq!(a, b);
    let kinds: Vec<&str> = a.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "xml_decl",
            "stream_header",
            "nonza",
            "stanza",
            "stanza",
            "stanza",
            "stream_end"
        ]
    );
}

#[test]
fn every_capture_view_runs() {
    for entry in std::fs::read_dir(util::root().join("captures")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().and_then(|e| e.to_str()) != Some("pcap") {
            continue;
        }
        let base = p.with_extension("");
        let base = base
            .strip_prefix(util::root())
            .unwrap_or(Path::new(""))
            .to_str()
            .unwrap()
            .to_owned();
        let out = with(
            &base,
            &["--signin", "--transcript", "--timeline", "--roster"],
        );
        assert!(out.contains("Sign-in, flow 0"), "{base}: {out}");
        assert!(out.contains("Roster of alice@localhost"), "{base}: {out}");
    }
}

// --- carbons, receipts, corrections, roster pushes ------------------------

/// The second recorded scenario (`xmpp_scenario.py --extras`): alice on two
/// resources with carbons, a receipt, a correction, roster pushes.
const EXTRAS: &str = "captures/prosody-extras-chat";

/// A message as the transcript should show it, from the action log.
#[derive(Debug, Clone, PartialEq)]
struct Said {
    from: String,
    to: String,
    id: String,
    body: String,
    original: Option<String>,
    /// Seconds from the message to its receipt, per the log.
    receipt_after: Option<f64>,
}

/// Replay the log: messages, corrections applied (XEP-0308: the last
/// message with that id from the same sender), receipts attached
/// (XEP-0184: the message whose id the receipt names).
fn said(log: &[Value]) -> Vec<Said> {
    let mut v: Vec<(f64, Said)> = Vec::new();
    for a in log {
        let t = a["t"].as_f64().unwrap();
        match a["action"].as_str().unwrap() {
            "send_message" => v.push((
                t,
                Said {
                    from: st(&a["actor"]),
                    to: st(&a["to"]),
                    id: st(&a["id"]),
                    body: st(&a["body"]),
                    original: None,
                    receipt_after: None,
                },
            )),
            "correct_message" => {
                let (_, m) = v
                    .iter_mut()
                    .rev()
                    .find(|(_, m)| m.id == st(&a["replaces"]) && m.from == st(&a["actor"]))
                    .unwrap();
                m.original.get_or_insert(m.body.clone());
                m.body = st(&a["body"]);
            }
            "receipt" => {
                let (t0, m) = v
                    .iter_mut()
                    .find(|(_, m)| m.id == st(&a["receipt_for"]))
                    .unwrap();
                m.receipt_after.get_or_insert(t - *t0);
            }
            _ => {}
        }
    }
    v.into_iter().map(|(_, m)| m).collect()
}

#[test]
fn extras_transcript_shows_receipts_corrections_and_each_carbon_once() {
    let log = actions(EXTRAS);
    let want = said(&log);
    // The scenario did what this test is about.
    for action in [
        "receipt",
        "correct_message",
        "carbon_seen",
        "enable_carbons",
    ] {
        assert!(log.iter().any(|a| a["action"] == action), "{action}");
    }
    assert!(want.iter().any(|m| m.original.is_some()));
    assert!(want.iter().any(|m| m.receipt_after.is_some()));
    assert!(want.iter().any(|m| m.receipt_after.is_none()));

    let json: Value = serde_json::from_str(&with(EXTRAS, &["--transcript", "-T", "json"])).unwrap();
    let convs = json["conversations"].as_array().unwrap();
    assert_eq!(convs.len(), 1, "{json}");
    let got: Vec<&Value> = convs[0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "message")
        .collect();
    // Each message once, although the capture holds it on the sender's
    // connection, on the receiver's and as a carbon on the other resource.
    assert_eq!(got.len(), want.len(), "{json}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(
            (st(&g["from"]), st(&g["to"]), st(&g["id"]), st(&g["body"])),
            (w.from.clone(), w.to.clone(), w.id.clone(), w.body.clone()),
        );
        assert_eq!(g["original"].as_str().map(str::to_owned), w.original, "{g}");
        match w.receipt_after {
            Some(after) => {
                let r = g["received"].as_f64().unwrap() - g["t"].as_f64().unwrap();
                assert!(
                    (r - after).abs() < 0.05,
                    "receipt after {r} s, log {after} s"
                );
            }
            None => assert!(g.get("received").is_none(), "{g}"),
        }
    }
    // Every carbon the clients saw names a message (or a correction of
    // one) that is shown exactly once.
    for c in log.iter().filter(|a| a["action"] == "carbon_seen") {
        let id = st(&c["id"]);
        let shown = got.iter().filter(|g| g["id"] == id.as_str()).count();
        let correction = log
            .iter()
            .any(|a| a["action"] == "correct_message" && a["id"] == id.as_str());
        assert_eq!(shown, usize::from(!correction), "carbon of {id}");
    }
    // The capture really holds carbons of both kinds.
    let events = with(EXTRAS, &["-T", "ndjson"]);
    for dir in ["sent", "received"] {
        let n = events
            .lines()
            .filter(|l| l.contains(&format!("\"direction\":\"{dir}\"")))
            .count();
        let seen = log
            .iter()
            .filter(|a| a["action"] == "carbon_seen" && a["direction"] == dir)
            .count();
        assert!(
            n >= seen && seen > 0,
            "{dir}: {n} events, {seen} in the log"
        );
    }

    // The text transcript says the same.
    let text = with(EXTRAS, &["--transcript"]);
    for w in &want {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("{}: {}", w.from, w.body)))
            .unwrap_or_else(|| panic!("{} missing in\n{text}", w.body));
        assert_eq!(
            line.contains(&format!(
                "(corrected; originally: {:?})",
                w.original.clone().unwrap_or_default()
            )),
            w.original.is_some(),
            "{line}"
        );
        assert_eq!(
            line.contains("[received "),
            w.receipt_after.is_some(),
            "{line}"
        );
        if let Some(o) = &w.original {
            // The original is not shown as a message of its own.
            assert!(!text.contains(&format!("{}: {o}", w.from)), "{text}");
        }
    }
    assert!(
        text.contains(&format!("({} messages)", want.len())),
        "{text}"
    );
}

#[test]
fn extras_roster_shows_the_pushed_contact() {
    let log = actions(EXTRAS);
    let items = ndjson(&with(EXTRAS, &["--roster", "-T", "ndjson"]), "roster_item");
    type Row = (String, Value, Value, String, Option<String>);
    for account in ["alice@localhost", "bob@localhost"] {
        // The roster result, then every push the client saw, in order.
        let mut want: std::collections::BTreeMap<String, Row> = Default::default();
        let row = |i: &Value| -> Row {
            let mut g: Vec<String> = i["groups"].as_array().unwrap().iter().map(st).collect();
            g.sort();
            (
                st(&i["jid"]),
                i["name"].clone(),
                serde_json::json!(g),
                st(&i["subscription"]),
                i["ask"].as_str().map(str::to_owned),
            )
        };
        let result = log
            .iter()
            .rfind(|a| a["action"] == "roster" && a["actor"] == account)
            .unwrap();
        for i in result["items"].as_array().unwrap() {
            want.insert(st(&i["jid"]), row(i));
        }
        for a in log
            .iter()
            .filter(|a| a["action"] == "roster_push_seen" && a["actor"] == account)
        {
            want.insert(st(&a["item"]["jid"]), row(&a["item"]));
        }
        let got: std::collections::BTreeMap<String, Row> = items
            .iter()
            .filter(|i| i["account"] == account)
            .map(|i| {
                let mut i = i.clone();
                i["jid"] = i["contact"].clone();
                (st(&i["contact"]), row(&i))
            })
            .collect();
        assert_eq!(got, want, "{account}");
    }
    // The contact alice added: its name and groups from the roster set,
    // the pending subscription from her request.
    let set = log.iter().find(|a| a["action"] == "roster_set").unwrap();
    let jid = st(&set["item"]["jid"]);
    let sub = log.iter().find(|a| a["action"] == "subscribe").unwrap();
    assert_eq!(st(&sub["to"]), jid);
    let item = items
        .iter()
        .find(|i| i["account"] == "alice@localhost" && i["contact"] == jid.as_str())
        .unwrap();
    assert_eq!(item["name"], set["item"]["name"]);
    assert_eq!(item["ask"], "subscribe");
    assert_eq!(item["subscription"], "none");
    assert_eq!(item["last_subscription"], "subscribe (sent)");
    let text = with(EXTRAS, &["--roster"]);
    let line = text.lines().find(|l| l.contains(&jid)).unwrap();
    assert!(line.contains(&st(&set["item"]["name"])), "{line}");
    for g in set["item"]["groups"].as_array().unwrap() {
        assert!(line.contains(&st(g)), "{line}");
    }
    assert!(
        line.contains(" none ") && line.contains(" subscribe "),
        "{line}"
    );
}

/// One TCP connection built by hand: the handshake, then each side's bytes
/// with the right sequence and acknowledgement numbers.
struct Conn {
    client: ([u8; 4], u16),
    server: ([u8; 4], u16),
    cseq: u32,
    sseq: u32,
}

impl Conn {
    fn open(frames: &mut Vec<Vec<u8>>, client: ([u8; 4], u16), server: ([u8; 4], u16)) -> Self {
        frames.push(seg(client, server, 0, 0, true, b""));
        frames.push(seg(server, client, 0, 1, true, b""));
        Self {
            client,
            server,
            cseq: 1,
            sseq: 1,
        }
    }

    /// Client to server.
    fn c(&mut self, frames: &mut Vec<Vec<u8>>, data: &str) {
        frames.push(seg(
            self.client,
            self.server,
            self.cseq,
            self.sseq,
            false,
            data.as_bytes(),
        ));
        self.cseq += u32::try_from(data.len()).unwrap();
    }

    /// Server to client.
    fn s(&mut self, frames: &mut Vec<Vec<u8>>, data: &str) {
        frames.push(seg(
            self.server,
            self.client,
            self.sseq,
            self.cseq,
            false,
            data.as_bytes(),
        ));
        self.sseq += u32::try_from(data.len()).unwrap();
    }

    /// Stream headers both ways and the bound JID.
    fn signed_in(frames: &mut Vec<Vec<u8>>, client: ([u8; 4], u16), jid: &str) -> Self {
        let domain = jid.split(['@', '/']).nth(1).unwrap();
        let mut c = Self::open(frames, client, ([10, 0, 0, 10], 5222));
        c.c(frames, &format!("<stream:stream to='{domain}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"));
        c.s(frames, &format!("<stream:stream from='{domain}' id='s1' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"));
        c.c(
            frames,
            "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
        );
        c.s(frames, &format!("<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>{jid}</jid></bind></iq>"));
        c
    }
}

/// A TCP segment; `ack` 0 on a SYN is the client's opening SYN (no ACK flag).
fn seg(
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    seq: u32,
    ack: u32,
    syn: bool,
    p: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(src.0, dst.0, 64)
        .tcp(src.1, dst.1, seq, 65535);
    if !(syn && ack == 0) {
        b = b.ack(ack);
    }
    if syn {
        b = b.syn();
    }
    let mut out = Vec::new();
    b.write(&mut out, p).unwrap();
    out
}

/// A roster item as Google Talk sends it (RFC 6121 §2.1.2 plus the
/// `google:roster` attributes).
struct GItem {
    jid: &'static str,
    name: Option<&'static str>,
    subscription: &'static str,
    ask: Option<&'static str>,
    groups: &'static [&'static str],
    t: Option<&'static str>,
    autohide: Option<&'static str>,
    mc: Option<&'static str>,
}

impl GItem {
    fn xml(&self) -> String {
        let mut a = format!(
            "<item jid='{}' subscription='{}'",
            self.jid, self.subscription
        );
        for (k, v) in [
            ("name", self.name),
            ("ask", self.ask),
            ("gr:t", self.t),
            ("gr:autohide", self.autohide),
            ("gr:mc", self.mc),
        ] {
            if let Some(v) = v {
                a.push_str(&format!(" {k}='{v}'"));
            }
        }
        a.push('>');
        for g in self.groups {
            a.push_str(&format!("<group>{g}</group>"));
        }
        a + "</item>"
    }
}

fn google_query(items: &[&GItem]) -> String {
    let mut q = "<query xmlns='jabber:iq:roster' xmlns:gr='google:roster' gr:ext='2'>".to_owned();
    for i in items {
        q.push_str(&i.xml());
    }
    q + "</query>"
}

#[test]
fn google_roster_pushes_keep_their_extension_attributes() {
    let juliet = GItem {
        jid: "juliet@gmail.com",
        name: Some("Juliet"),
        subscription: "both",
        ask: None,
        groups: &["Capulet"],
        t: None,
        autohide: None,
        mc: Some("25"),
    };
    let tybalt = GItem {
        jid: "tybalt@gmail.com",
        name: None,
        subscription: "none",
        ask: None,
        groups: &[],
        t: Some("B"),
        autohide: None,
        mc: None,
    };
    let mercutio = GItem {
        jid: "mercutio@gmail.com",
        name: Some("Mercutio"),
        subscription: "none",
        ask: Some("subscribe"),
        groups: &["Friends", "Montague"],
        t: Some("H"),
        autohide: Some("true"),
        mc: Some("0"),
    };
    let juliet2 = GItem {
        name: Some("Juliet C."),
        t: Some("P"),
        mc: Some("26"),
        ..juliet
    };
    let nurse = GItem {
        jid: "nurse@gmail.com",
        name: Some("Nurse"),
        subscription: "both",
        ask: None,
        groups: &[],
        t: None,
        autohide: None,
        mc: None,
    };
    let tybalt_removed = GItem {
        subscription: "remove",
        t: None,
        ..tybalt
    };
    let mut f = Vec::new();
    let mut c = Conn::signed_in(&mut f, ([10, 0, 0, 1], 40100), "romeo@gmail.com/orchard");
    c.c(&mut f, "<iq type='get' id='r1'><query xmlns='jabber:iq:roster' xmlns:gr='google:roster' gr:ext='2'/></iq>");
    c.s(
        &mut f,
        &format!(
            "<iq type='result' id='r1' to='romeo@gmail.com/orchard'>{}</iq>",
            google_query(&[&juliet, &tybalt])
        ),
    );
    // RFC 6121 §2.1.6 pushes: a new contact, a removal, a change (from the
    // account's bare JID, which is allowed), and a forged one.
    c.s(
        &mut f,
        &format!(
            "<iq type='set' id='p1' to='romeo@gmail.com/orchard'>{}</iq>",
            google_query(&[&mercutio])
        ),
    );
    c.c(&mut f, "<iq type='result' id='p1'/>");
    c.s(
        &mut f,
        &format!(
            "<iq type='set' id='p2'>{}</iq>",
            google_query(&[&tybalt_removed])
        ),
    );
    c.s(
        &mut f,
        &format!(
            "<iq type='set' id='p3' from='romeo@gmail.com'>{}</iq>",
            google_query(&[&juliet2])
        ),
    );
    c.s(
        &mut f,
        &format!(
            "<iq type='set' id='p4' from='mallory@evil.example/x'>{}</iq>",
            google_query(&[&nurse])
        ),
    );
    let file = pcap_file(&f);
    let path = file.path().to_str().unwrap();
    let items = ndjson(
        &run_ok(&["-r", path, "--roster", "-T", "ndjson"]),
        "roster_item",
    );
    let want = [&juliet2, &mercutio];
    assert_eq!(items.len(), want.len(), "{items:?}");
    for (got, w) in items.iter().zip(want) {
        assert_eq!(got["account"], "romeo@gmail.com");
        assert_eq!(got["contact"], w.jid);
        assert_eq!(got["name"].as_str(), w.name);
        assert_eq!(got["subscription"], w.subscription);
        assert_eq!(got["ask"].as_str(), w.ask);
        assert_eq!(got["groups"], serde_json::json!(w.groups));
        assert_eq!(got["google_t"].as_str(), w.t, "{got}");
        assert_eq!(got["google_autohide"].as_str(), w.autohide, "{got}");
        assert_eq!(got["google_mc"].as_str(), w.mc, "{got}");
    }
    let text = run_ok(&["-r", path, "--roster"]);
    let line = text
        .lines()
        .find(|l| l.contains("mercutio@gmail.com"))
        .unwrap();
    assert!(
        line.contains("Friends,Montague")
            && line.contains("[gr:t=H hidden, gr:autohide=true, gr:mc=0]"),
        "{line}"
    );
    assert!(text.contains("[gr:t=P pinned, gr:mc=26]"), "{text}");
    assert!(
        !text.contains("tybalt") && !text.contains("nurse"),
        "{text}"
    );
}

#[test]
fn carbons_sent_and_received_count_once_and_forgeries_are_ignored() {
    let alice = "alice@example.org";
    let bob = "bob@example.org";
    let (m1, m2) = ("Hello from the desk", "Hi from home, Alice");
    let mut f = Vec::new();
    let mut desk = Conn::signed_in(&mut f, ([10, 0, 0, 1], 40200), "alice@example.org/desk");
    let mut phone = Conn::signed_in(&mut f, ([10, 0, 0, 2], 40201), "alice@example.org/phone");
    let mut home = Conn::signed_in(&mut f, ([10, 0, 0, 3], 40202), "bob@example.org/home");
    let chat = |from: &str, to: &str, id: &str, body: &str| {
        format!(
            "<message from='{from}' to='{to}' type='chat' id='{id}' xmlns='jabber:client'><body>{body}</body></message>"
        )
    };
    let carbon = |from: &str, to: &str, dir: &str, inner: &str| {
        format!(
            "<message from='{from}' to='{to}' type='chat'><{dir} xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>{inner}</forwarded></{dir}></message>"
        )
    };
    // alice writes from the desk; the phone gets a <sent/> copy.
    desk.c(
        &mut f,
        &format!("<message to='{bob}' type='chat' id='a1'><body>{m1}</body></message>"),
    );
    home.s(&mut f, &chat("alice@example.org/desk", bob, "a1", m1));
    phone.s(
        &mut f,
        &carbon(
            alice,
            "alice@example.org/phone",
            "sent",
            &chat("alice@example.org/desk", bob, "a1", m1),
        ),
    );
    // bob answers; the desk gets it, the phone a <received/> copy.
    home.c(
        &mut f,
        &format!("<message to='{alice}' type='chat' id='b9'><body>{m2}</body></message>"),
    );
    desk.s(&mut f, &chat("bob@example.org/home", alice, "b9", m2));
    phone.s(
        &mut f,
        &carbon(
            alice,
            "alice@example.org/phone",
            "received",
            &chat("bob@example.org/home", alice, "b9", m2),
        ),
    );
    // XEP-0280 §11: a "carbon" from anyone but alice's bare JID is forged.
    phone.s(
        &mut f,
        &carbon(
            "mallory@evil.example",
            "alice@example.org/phone",
            "received",
            &chat("bob@example.org/home", alice, "x1", "Send me your password"),
        ),
    );
    let file = pcap_file(&f);
    let path = file.path().to_str().unwrap();
    let messages = |extra: &[&str]| {
        let mut args = vec!["-r", path, "--transcript", "-T", "json"];
        args.extend_from_slice(extra);
        let json: Value = serde_json::from_str(&run_ok(&args)).unwrap();
        json["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["entries"].as_array().unwrap().clone())
            .filter(|e| e["type"] == "message")
            .map(|e| (st(&e["from"]), st(&e["to"]), st(&e["id"]), st(&e["body"])))
            .collect::<Vec<_>>()
    };
    let want = vec![
        (
            alice.to_owned(),
            bob.to_owned(),
            "a1".to_owned(),
            m1.to_owned(),
        ),
        (
            bob.to_owned(),
            alice.to_owned(),
            "b9".to_owned(),
            m2.to_owned(),
        ),
    ];
    // All three connections: each message once.
    assert_eq!(messages(&[]), want);
    // The phone's connection alone holds only the carbons: the same two.
    assert_eq!(messages(&["--jid", "alice@example.org/phone"]), want);
    let text = run_ok(&["-r", path, "--transcript"]);
    assert!(!text.contains("password"), "{text}");
    assert!(text.contains("(2 messages)"), "{text}");
}

/// XEP-0184 and XEP-0308 together: a receipt for a correction is a receipt
/// for the message it corrects, and a correction naming an earlier
/// correction still finds the message.
#[test]
fn receipts_for_corrections_and_chained_corrections() {
    let alice = "alice@example.org";
    let bob = "bob@example.org/home";
    let mut f = Vec::new();
    let mut c = Conn::signed_in(&mut f, ([10, 0, 0, 1], 40300), "alice@example.org/desk");
    let msg = |id: &str, body: &str, extra: &str| {
        format!(
            "<message from='{bob}' to='{alice}' type='chat' id='{id}'><body>{body}</body>{extra}</message>"
        )
    };
    let request = "<request xmlns='urn:xmpp:receipts'/>";
    let replace = |id: &str| format!("<replace xmlns='urn:xmpp:message-correct:0' id='{id}'/>");
    let texts = ["Lunch at noon?", "Lunch at one?", "Lunch at two?"];
    c.s(&mut f, &msg("m1", texts[0], request));
    c.s(
        &mut f,
        &msg("m2", texts[1], &format!("{}{request}", replace("m1"))),
    );
    // alice's client acknowledges the correction only.
    c.c(
        &mut f,
        &format!(
            "<message to='{bob}' id='r2'><received xmlns='urn:xmpp:receipts' id='m2'/></message>"
        ),
    );
    // The next correction names the previous one (m2), not m1.
    c.s(&mut f, &msg("m3", texts[2], &replace("m2")));
    let file = pcap_file(&f);
    let path = file.path().to_str().unwrap();
    let json: Value =
        serde_json::from_str(&run_ok(&["-r", path, "--transcript", "-T", "json"])).unwrap();
    let entries: Vec<&Value> = json["conversations"][0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "message")
        .collect();
    assert_eq!(entries.len(), 1, "{json}");
    let m = entries[0];
    assert_eq!(m["id"], "m1");
    assert_eq!(m["body"], texts[2]);
    assert_eq!(m["original"], texts[0]);
    // The receipt came 2 s after the message (one frame a second).
    let after = m["received"].as_f64().unwrap() - m["t"].as_f64().unwrap();
    assert!((after - 2.0).abs() < 1e-6, "{m}");
}

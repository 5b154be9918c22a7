//! The story views against what the recording script says it did (the
//! `*.actions.jsonl` beside each capture), names from DNS answers, `--jid`,
//! and hand-typed (telnet-style) streams.

use std::path::Path;

use etherparse::PacketBuilder;
use serde_json::Value;
use xmppscope::dissect::{Config, Dissector};
use xmppscope::model::{Packet, Timestamp};

use crate::util;

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
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&262_144u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        b.extend_from_slice(&(1_368_619_200u32 + u32::try_from(i).unwrap()).to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        let n = u32::try_from(f.len()).unwrap();
        b.extend_from_slice(&n.to_le_bytes());
        b.extend_from_slice(&n.to_le_bytes());
        b.extend_from_slice(f);
    }
    let mut t = tempfile::Builder::new().suffix(".pcap").tempfile().unwrap();
    std::io::Write::write_all(&mut t, &b).unwrap();
    t
}

fn tcp(src: ([u8; 4], u16), dst: ([u8; 4], u16), seq: u32, syn: bool, p: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(src.0, dst.0, 64)
        .tcp(src.1, dst.1, seq, 65535);
    if syn {
        b = b.syn();
    }
    let mut out = Vec::new();
    b.write(&mut out, p).unwrap();
    out
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
    let b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([10, 0, 0, 53], [10, 0, 0, 1], 64)
        .udp(53, 33333);
    let mut out = Vec::new();
    b.write(&mut out, &m).unwrap();
    out
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

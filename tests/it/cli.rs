//! The binary as a user runs it: the README's command, formats, masking,
//! errors and exit codes.

use std::io::Write as _;
use std::process::Stdio;

use crate::util;

const PLAIN: &str = "captures/prosody-plain-signin-chat.pcap";

fn run_ok(args: &[&str]) -> String {
    let out = util::bin()
        .current_dir(util::root())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xmppscope {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The README's first command shows the whole sign-in and the chat, in order.
#[test]
fn readme_command_shows_the_sign_in_in_order() {
    let text = run_ok(&["-r", PLAIN]);
    let infos: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once(" XMPP ").map(|(_, r)| r))
        .map(|r| r.split_once(' ').map_or(r, |(_, info)| info))
        .flat_map(|info| info.split(", "))
        .collect();
    let expected = [
        "STREAM > localhost",
        "STREAM < localhost",
        "FEATURES",
        "AUTH PLAIN user=alice",
        "SUCCESS",
        "STREAM > localhost",
        "STREAM < localhost",
        "FEATURES",
        "IQ(set) BIND",
        "IQ(result) BIND",
        "IQ(get) QUERY(jabber:iq:roster)",
        "IQ(result) QUERY(jabber:iq:roster)",
        "PRESENCE",
    ];
    let mut at = 0;
    for want in expected {
        let found = infos[at..]
            .iter()
            .position(|i| i.starts_with(want))
            .unwrap_or_else(|| panic!("{want:?} not found after item {at} in:\n{text}"));
        at += found + 1;
    }
    assert!(text.contains("[composing]"), "{text}");
    assert!(text.contains("[paused]"), "{text}");
    assert!(
        text.contains("\"Hi Bob! Are you free for lun…\" [active]") || text.contains("\"Hi Bob!"),
        "{text}"
    );
    assert!(text.contains("away \"in a meeting\""), "{text}");
    assert!(text.contains("STREAM END"), "{text}");
    // Frames match tshark's numbering of the same capture (frame 8 is AUTH).
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("8 ") && l.contains("AUTH PLAIN")),
        "{text}"
    );
}

/// NDJSON: one object per event with the documented fields; passwords masked.
#[test]
fn ndjson_fields_and_masking() {
    let text = run_ok(&["-r", PLAIN, "-T", "ndjson"]);
    assert!(!text.contains("alice-wonderland-42"));
    assert!(
        !text.contains("YWxpY2U"),
        "base64 of the credentials leaked"
    );
    let mut saw_auth = false;
    let mut saw_composing = false;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        // Notes, and the IQ links written after a response, have their own shape.
        if v["kind"] == "note" || v["kind"] == "iq_link" {
            continue;
        }
        for f in [
            "frame", "frames", "time", "src", "sport", "dst", "dport", "flow", "dir", "kind",
            "name", "type", "id", "from", "to", "info", "xml", "notes",
        ] {
            assert!(v.get(f).is_some(), "missing {f} in {line}");
        }
        if v["name"] == "auth" {
            saw_auth = true;
            assert!(v["xml"].as_str().unwrap().contains("masked"), "{line}");
            assert_eq!(v["dir"], "c2s");
        }
        if v["chat_state"] == "composing" {
            saw_composing = true;
        }
    }
    assert!(saw_auth && saw_composing);
    let shown = run_ok(&["-r", PLAIN, "-T", "ndjson", "--show-secrets"]);
    assert!(
        shown.contains("AGFsaWNlAGFsaWNlLXdvbmRlcmxhbmQtNDI="),
        "--show-secrets must reveal the SASL PLAIN blob"
    );
}

/// `-r -` reads standard input.
#[test]
fn reads_standard_input() {
    let bytes = std::fs::read(util::root().join(PLAIN)).unwrap();
    let mut child = util::bin()
        .args(["-r", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        run_ok(&["-r", PLAIN])
    );
}

/// A file cut inside a record: the packets before it, a message, exit 1.
#[test]
fn truncated_file_keeps_what_came_before() {
    let bytes = std::fs::read(util::root().join(PLAIN)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = util::bin().arg("-r").arg(&cut).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cut.pcap") && err.contains("middle of a record"),
        "{err}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("AUTH PLAIN"), "{text}");
}

/// Errors name the file and exit 2.
#[test]
fn bad_files_are_errors_that_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture file at all").unwrap();
    for path in [junk.to_str().unwrap(), "/nonexistent/x.pcap"] {
        let out = util::bin().args(["-r", path]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{path}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(path), "{err}");
    }
    // A link type we do not dissect (DLT 147, user-defined) is named.
    let mut hdr = Vec::new();
    hdr.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    hdr.extend_from_slice(&2u16.to_le_bytes());
    hdr.extend_from_slice(&4u16.to_le_bytes());
    hdr.extend_from_slice(&[0; 8]);
    hdr.extend_from_slice(&65535u32.to_le_bytes());
    hdr.extend_from_slice(&147u32.to_le_bytes());
    let odd = dir.path().join("odd.pcap");
    std::fs::write(&odd, &hdr).unwrap();
    let out = util::bin().arg("-r").arg(&odd).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("link type") && err.contains("147"), "{err}");
}

/// `--host` keeps only that host's flows; `-c` stops early.
#[test]
fn host_filter_and_count() {
    let all = run_ok(&["-r", PLAIN, "-n"]);
    assert!(!all.is_empty());
    let none = run_ok(&["-r", PLAIN, "--host", "192.0.2.1"]);
    assert!(none.is_empty(), "{none}");
    let lo = run_ok(&["-r", PLAIN, "--host", "127.0.0.1", "-n"]);
    assert_eq!(lo, all);
    let first = run_ok(&["-r", PLAIN, "-c", "6"]);
    assert_eq!(first.lines().count(), 2, "{first}");
}

/// `--stats` prints every counter a user checks, including limits.
#[test]
fn stats_text() {
    let text = run_ok(&["-r", PLAIN, "-q", "--stats"]);
    for want in [
        "Packets:",
        "Messages:",
        "Chat states:",
        "Presence:",
        "IQ:",
        "Expert notes:",
        "Limits hit:",
    ] {
        assert!(text.contains(want), "{want} missing in:\n{text}");
    }
    assert!(
        text.contains("SASL:                 auth 2 (PLAIN 2)"),
        "{text}"
    );
}

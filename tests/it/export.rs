//! `-r IN -w OUT`: exporting the packets of the flows `--jid` / `--host`
//! select (or all of them), checked record by record against the input,
//! read back by libpcap, by `xmppscope -r` and by tshark.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};

use crate::util;
use crate::util::{tcp_frame as tcp, udp_frame as udp};

const PLAIN: &str = "captures/prosody-plain-signin-chat.pcap";

/// One record of a capture file: seconds, nanoseconds, length on the
/// wire, captured bytes.
type Record = (i64, i64, u32, Vec<u8>);

fn records(path: &Path) -> Vec<Record> {
    let mut cap = pcap::Capture::from_file_with_precision(path, pcap::Precision::Nano)
        .unwrap_or_else(|e| panic!("libpcap cannot read {}: {e}", path.display()));
    let mut v = Vec::new();
    loop {
        match cap.next_packet() {
            Ok(p) => v.push((
                p.header.ts.tv_sec,
                p.header.ts.tv_usec,
                p.header.len,
                p.data.to_vec(),
            )),
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
    v
}

/// The IP source and destination of an Ethernet frame.
fn ip_pair(frame: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match SlicedPacket::from_ethernet(frame).ok()?.net? {
        NetSlice::Ipv4(v4) => Some((
            IpAddr::from(v4.header().source_addr()),
            IpAddr::from(v4.header().destination_addr()),
        )),
        NetSlice::Ipv6(v6) => Some((
            IpAddr::from(v6.header().source_addr()),
            IpAddr::from(v6.header().destination_addr()),
        )),
        _ => None,
    }
}

/// The TCP connection of an Ethernet frame, both directions alike.
fn connection(frame: &[u8]) -> Option<((IpAddr, u16), (IpAddr, u16))> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let (src, dst) = ip_pair(frame)?;
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        return None;
    };
    let a = (src, t.source_port());
    let b = (dst, t.destination_port());
    Some(if a <= b { (a, b) } else { (b, a) })
}

fn tcp_payload(frame: &[u8]) -> Vec<u8> {
    match SlicedPacket::from_ethernet(frame)
        .ok()
        .and_then(|p| p.transport)
    {
        Some(TransportSlice::Tcp(t)) => t.payload().to_vec(),
        _ => Vec::new(),
    }
}

/// The records of the TCP connections whose bytes contain `needle` (found
/// without xmppscope: the capture's own bytes, connection by connection).
fn records_of_connections_with(input: &[Record], needle: &[u8]) -> Vec<Record> {
    let mut bytes: std::collections::BTreeMap<_, Vec<u8>> = Default::default();
    for r in input {
        if let Some(c) = connection(&r.3) {
            bytes.entry(c).or_default().extend(tcp_payload(&r.3));
        }
    }
    let wanted: BTreeSet<_> = bytes
        .iter()
        .filter(|(_, b)| b.windows(needle.len()).any(|w| w == needle))
        .map(|(c, _)| *c)
        .collect();
    assert!(!wanted.is_empty(), "no connection carries the needle");
    input
        .iter()
        .filter(|r| connection(&r.3).is_some_and(|c| wanted.contains(&c)))
        .cloned()
        .collect()
}

fn xmppscope(args: &[&str]) -> std::process::Output {
    util::bin()
        .current_dir(util::root())
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = xmppscope(args);
    assert!(
        out.status.success(),
        "xmppscope {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The text lines without the frame number and the time (an export
/// renumbers the frames and may start later).
fn columns(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().skip(2).collect::<Vec<_>>().join(" "))
        .collect()
}

fn have_tshark() -> bool {
    let found = Command::new("tshark")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "tshark is missing and CI=true: the export must be checked by tshark in CI"
        );
        eprintln!("note: tshark not installed; the exports were checked with libpcap only");
    }
    found
}

/// tshark reads the file without complaint; its packet count.
fn tshark_count(path: &Path) -> usize {
    let out = Command::new("tshark").arg("-r").arg(path).output().unwrap();
    assert!(
        out.status.success(),
        "tshark -r {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn jid_export_holds_exactly_that_accounts_flow() {
    let dir = tempfile::tempdir().unwrap();
    let input = records(&util::root().join(PLAIN));
    for (jid, needle) in [
        ("alice@localhost", &b"<jid>alice@localhost/"[..]),
        ("bob@localhost/garden", b"<jid>bob@localhost/garden<"),
    ] {
        // Every packet of the account's connection: handshake, ACKs, FIN,
        // both directions, with their times and lengths.
        let want = records_of_connections_with(&input, needle);
        assert!(want.len() > 10 && want.len() < input.len(), "{jid}");
        for name in ["out.pcapng", "out.pcap"] {
            let out = dir.path().join(name);
            let printed = ok(&["-r", PLAIN, "--jid", jid, "-w", out.to_str().unwrap()]);
            // Like tshark -r IN -w OUT: nothing printed without -P.
            assert_eq!(printed, "", "{jid} {name}");
            let got = records(&out);
            assert_eq!(got.len(), want.len(), "{jid} {name}");
            assert!(got == want, "{jid} {name}: records differ from the input's");
            let head = std::fs::read(&out).unwrap();
            let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            if name.ends_with(".pcap") {
                assert_eq!(magic, 0xa1b2_3c4d, "nanosecond classic pcap");
            } else {
                assert_eq!(magic, 0x0a0d_0d0a, "pcapng section header");
            }
            // xmppscope reads it back with the same lines as --jid on the
            // original (frame numbers and times aside).
            let back = ok(&["-r", out.to_str().unwrap(), "-n"]);
            let orig = ok(&["-r", PLAIN, "--jid", jid, "-n"]);
            assert!(!orig.is_empty());
            assert_eq!(columns(&back), columns(&orig), "{jid} {name}");
            if have_tshark() {
                assert_eq!(tshark_count(&out), want.len(), "{jid} {name}");
            }
        }
    }
    // -P prints the lines as well.
    let out = dir.path().join("p.pcapng");
    let printed = ok(&[
        "-r",
        PLAIN,
        "--jid",
        "alice@localhost",
        "-w",
        out.to_str().unwrap(),
        "-P",
        "-n",
    ]);
    assert_eq!(
        printed,
        ok(&["-r", PLAIN, "--jid", "alice@localhost", "-n"])
    );
}

#[test]
fn export_without_a_selection_copies_and_host_with_jid_intersects() {
    let dir = tempfile::tempdir().unwrap();
    let input = records(&util::root().join(PLAIN));
    let all = dir.path().join("all.pcapng");
    ok(&["-r", PLAIN, "-w", all.to_str().unwrap()]);
    assert!(records(&all) == input, "a copy differs from its input");
    // Standard output: the same bytes as the file.
    let out = xmppscope(&["-r", PLAIN, "-w", "-"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, std::fs::read(&all).unwrap());
    // --host and --jid together: the account's flows to or from that host.
    let both = dir.path().join("both.pcap");
    ok(&[
        "-r",
        PLAIN,
        "--host",
        "127.0.0.1",
        "--jid",
        "bob@localhost",
        "-w",
        both.to_str().unwrap(),
    ]);
    assert!(records(&both) == records_of_connections_with(&input, b"<jid>bob@localhost/"));
    let none = dir.path().join("none.pcap");
    ok(&[
        "-r",
        PLAIN,
        "--host",
        "192.0.2.1",
        "--jid",
        "bob@localhost",
        "-w",
        none.to_str().unwrap(),
    ]);
    assert!(records(&none).is_empty());
    // An empty selection is not an error, but it is said.
    let out = xmppscope(&[
        "-r",
        PLAIN,
        "--jid",
        "nobody@localhost",
        "-w",
        none.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--jid nobody@localhost selects no packet"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(records(&none).is_empty());
    if have_tshark() {
        assert_eq!(tshark_count(&all), input.len());
        assert_eq!(tshark_count(&none), 0);
    }
}

/// A DNS response (RFC 1035 §4.1) from 10.0.0.53: `q` A `addr`.
fn dns_answer(q: &str, addr: [u8; 4]) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    for l in q.split('.') {
        m.push(u8::try_from(l.len()).unwrap());
        m.extend_from_slice(l.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4]);
    m.extend_from_slice(&addr);
    udp([10, 0, 0, 53], [10, 0, 0, 1], 53, 33333, &m)
}

const HDR: &[u8] = b"<stream:stream to='example.org' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

/// `--host NAME`, the name learnt from a DNS answer in the capture: the
/// packets to or from its address go out, whatever their protocol (as
/// tshark's `ip.addr == X` keeps them); the DNS answer itself, between the
/// client and its resolver, does not.
#[test]
fn host_name_export_keeps_the_packets_of_that_address() {
    let dir = tempfile::tempdir().unwrap();
    let c1 = ([10, 0, 0, 1], 40000);
    let c2 = ([10, 0, 0, 1], 40001);
    let s1 = ([192, 0, 2, 7], 5222);
    let s2 = ([192, 0, 2, 8], 5222);
    let frames = vec![
        dns_answer("talk.example.com", [192, 0, 2, 7]),
        tcp(c1, s1, 1, true, b""),
        tcp(s1, c1, 1, true, b""),
        tcp(c1, s1, 2, false, HDR),
        tcp(c2, s2, 1, true, b""),
        tcp(c2, s2, 2, false, HDR),
        // Not TCP, but to that address: kept, like ip.addr == 192.0.2.7.
        udp([10, 0, 0, 1], [192, 0, 2, 7], 3478, 3478, b"stun"),
        tcp(
            c1,
            s1,
            2 + u32::try_from(HDR.len()).unwrap(),
            false,
            b"<presence/>",
        ),
    ];
    let input_path = dir.path().join("in.pcap");
    std::fs::write(&input_path, util::classic_pcap(&frames, 1000)).unwrap();
    let input = records(&input_path);
    let host = IpAddr::from([192, 0, 2, 7]);
    let want: Vec<Record> = input
        .iter()
        .filter(|r| ip_pair(&r.3).is_some_and(|(s, d)| s == host || d == host))
        .cloned()
        .collect();
    assert_eq!(want.len(), 5);
    let by_name = dir.path().join("name.pcapng");
    let by_addr = dir.path().join("addr.pcapng");
    let inp = input_path.to_str().unwrap();
    ok(&[
        "-r",
        inp,
        "--host",
        "talk.example.com",
        "-w",
        by_name.to_str().unwrap(),
    ]);
    ok(&[
        "-r",
        inp,
        "--host",
        "192.0.2.7",
        "-w",
        by_addr.to_str().unwrap(),
    ]);
    assert!(records(&by_name) == want, "--host NAME export");
    assert!(records(&by_addr) == want, "--host ADDR export");
    if have_tshark() {
        assert_eq!(tshark_count(&by_name), want.len());
        // tshark's own filter keeps the same packets.
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&input_path)
            .args(["-Y", "ip.addr == 192.0.2.7"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            want.len()
        );
    }
}

#[test]
fn export_errors_say_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist.
    let bad = dir.path().join("no/such/dir/out.pcapng");
    let out = xmppscope(&[
        "-r",
        PLAIN,
        "--jid",
        "alice@localhost",
        "-w",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot create savefile {}", bad.display()))
            && err.contains("No such file or directory"),
        "{err}"
    );
    assert!(!bad.exists());
    // A directory is not a file.
    let out = xmppscope(&["-r", PLAIN, "-w", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot create savefile"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Writing over the input is refused before anything is touched.
    let copy = dir.path().join("in.pcap");
    std::fs::copy(util::root().join(PLAIN), &copy).unwrap();
    let before = std::fs::read(&copy).unwrap();
    let c = copy.to_str().unwrap();
    let out = xmppscope(&["-r", c, "-w", c]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is the capture -r reads"));
    assert_eq!(std::fs::read(&copy).unwrap(), before);
    // A missing input leaves no empty output behind.
    let out_path = dir.path().join("never.pcapng");
    let out = xmppscope(&[
        "-r",
        dir.path().join("missing.pcap").to_str().unwrap(),
        "-w",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.pcap"));
    assert!(!out_path.exists());
    // An unknown name: the error lists what the capture resolves.
    let out = xmppscope(&[
        "-r",
        PLAIN,
        "--host",
        "talk.google.com",
        "-w",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("names it resolves: localhost"));
    assert!(!out_path.exists());
    // -w - cannot share standard output with printed lines or a view.
    for extra in [&["-P"][..], &["--transcript"], &["--stats"]] {
        let mut args = vec!["-r", PLAIN, "-w", "-"];
        args.extend_from_slice(extra);
        let out = xmppscope(&args);
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        assert!(out.stdout.is_empty(), "{extra:?}");
    }
}

/// With -P, a standard output closed early (`| head`) leaves a finished
/// export but is an error: the export stopped part-way.
#[test]
fn closed_output_with_print_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("p.pcapng");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = util::bin()
        .current_dir(util::root())
        .args(["-r", PLAIN, "-P", "-w", out_path.to_str().unwrap()])
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the export stopped"), "{err}");
    // What was written is a valid file.
    let got = records(&out_path);
    assert!(
        err.contains(&format!("holds the {} packets", got.len())),
        "{err}"
    );
}

/// SIGINT while exporting from a pipe that stays open: the file is
/// finished (valid, every block whole) with the packets read before, and
/// the exit status says the run was interrupted.
#[test]
fn sigint_leaves_a_valid_export() {
    let dir = tempfile::tempdir().unwrap();
    let input = records(&util::root().join(PLAIN));
    // Enough records for complete reader batches (1024 frames each).
    let mut frames = Vec::new();
    while frames.len() < 2500 {
        frames.extend(input.iter().map(|r| r.3.clone()));
    }
    let bytes = util::classic_pcap(&frames, 1000);
    let out_path = dir.path().join("cut.pcapng");
    let mut child = util::bin()
        .args(["-r", "-", "-w", out_path.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, &bytes).unwrap();
    std::io::Write::flush(&mut stdin).unwrap();
    // The pipe stays open: xmppscope waits for more until the signal.
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited with the pipe open"
    );
    let pid = child.id().to_string();
    let st = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(out.status.code(), Some(130));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("interrupted by signal 2"), "{err}");
    let got = records(&out_path);
    assert!(
        err.contains(&format!("holds the {} packets", got.len())),
        "{err}"
    );
    // Whole batches were read before the signal; the file holds them in
    // order, each record as it was.
    assert!(got.len() >= 1024, "{} records", got.len());
    let fed = records(&{
        let p = dir.path().join("fed.pcap");
        std::fs::write(&p, &bytes).unwrap();
        p
    });
    if let Some(i) = (0..got.len()).find(|&i| got.get(i) != fed.get(i)) {
        let head = |r: Option<&Record>| r.map(|r| (r.0, r.1, r.2, r.3.len()));
        panic!(
            "record {i} differs: {:?} vs {:?}",
            head(got.get(i)),
            head(fed.get(i))
        );
    }
    if have_tshark() {
        assert_eq!(tshark_count(&out_path), got.len());
    }
}

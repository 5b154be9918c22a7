//! Fuzz target: the whole pipeline over a classic pcap file held in memory.
//!
//! The input is a classic pcap file (so any crash file reproduces with
//! `xmppscope -r crash-…` too). It is walked here without libpcap: the
//! 24-byte global header (either byte order, micro- or nanosecond magic),
//! then 16-byte record headers and their bytes, stopping at a record cut
//! short, like libpcap. Every frame goes through `Dissector::dissect` and
//! every packet through the printers' public functions (tshark-like line,
//! NDJSON, expert, stats), then `finish` and the flushed events likewise.
//!
//! The dissector's configuration comes from the header's `thiszone` field
//! (bytes 8..12), which libpcap ignores, so seeds taken from real captures
//! (thiszone 0) run with everything on:
//!
//! ```text
//! bit 0  keep_xml off          bit 3  no TLS key log
//! bit 1  keep_tree off         bit 4  small limits (flows, framer, TCP, IQs)
//! bit 2  show_secrets on       bit 5  no extra XMPP ports (1299, 7400)
//!                               bit 6  a counts-only twin (below)
//! ```
//!
//! With bit 6, a counts-only dissector (what `-q --stats` runs: stanzas
//! without notes come as tallies, no Info) reads the same frames beside
//! the full one, and the statistics of the two must be the same.
//!
//! The key log is the project's own (`captures/*.keys`), so the prosody
//! TLS captures decrypt and the decrypted XMPP is fuzzed as well.

#![no_main]

use std::io;
use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use xmppscope::dissect::{Config, Dissector, Limits};
use xmppscope::keylog::KeyLog;
use xmppscope::model::{Event, Note, Packet, Tally, Timestamp};
use xmppscope::output::{self, Clock, expert::Expert, stats::Stats};
use xmppscope::tcp::reassembly::ReassemblyLimits;
use xmppscope::xmpp::framer::FramerLimits;

static KEYS: LazyLock<Arc<KeyLog>> = LazyLock::new(|| {
    let text = [
        include_str!("../../captures/prosody-directtls-signin.keys"),
        include_str!("../../captures/prosody-starttls-aes128-signin.keys"),
        include_str!("../../captures/prosody-starttls-chacha-signin.keys"),
        include_str!("../../captures/prosody-starttls-signin.keys"),
        include_str!("../../captures/prosody-starttls12-cbc-signin.keys"),
        include_str!("../../captures/prosody-starttls12-cbcsha1-signin.keys"),
        include_str!("../../captures/prosody-starttls12-chacha-signin.keys"),
        include_str!("../../captures/prosody-starttls12-signin.keys"),
    ]
    .join("\n");
    Arc::new(KeyLog::parse(&text))
});

/// Largest record libpcap accepts (its MAXIMUM_SNAPLEN).
const MAX_RECORD: usize = 262_144;

struct Header {
    big_endian: bool,
    nanos: bool,
    linktype: i32,
    zone: u32,
}

fn header(d: &[u8]) -> Option<Header> {
    let magic: [u8; 4] = d.get(..4)?.try_into().ok()?;
    let (big_endian, nanos) = match u32::from_le_bytes(magic) {
        0xa1b2_c3d4 => (false, false),
        0xa1b2_3c4d => (false, true),
        0xd4c3_b2a1 => (true, false),
        0x4d3c_b2a1 => (true, true),
        _ => return None,
    };
    let rd = |o: usize| -> Option<u32> {
        let b: [u8; 4] = d.get(o..o + 4)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    Some(Header {
        big_endian,
        nanos,
        zone: rd(8)?,
        // The upper bits hold the FCS length and flags (LINKTYPE_LINK_TYPE_MASK).
        linktype: (rd(20)? & 0x03ff_ffff) as i32,
    })
}

fn config(zone: u32) -> Config {
    let small = zone & 16 != 0;
    let limits = if small {
        Limits {
            max_flows: 4,
            idle_timeout_secs: 30,
            tcp: ReassemblyLimits {
                max_buffered_bytes: 512,
                max_holes: 2,
                retx_compare_bytes: 16,
            },
            framer: FramerLimits {
                max_element_bytes: 200,
                max_depth: 3,
            },
            max_pending_iqs: 2,
            ..Limits::default()
        }
    } else {
        Limits::default()
    };
    Config {
        limits,
        xmpp_ports: if zone & 32 == 0 {
            vec![1299, 7400]
        } else {
            Vec::new()
        },
        hosts: Vec::new(),
        keep_xml: zone & 1 == 0,
        keep_tree: zone & 2 == 0,
        show_secrets: zone & 4 != 0,
        keylog: (zone & 8 == 0).then(|| KEYS.clone()),
        ..Config::default()
    }
}

struct Printers {
    clock: Clock,
    line: String,
    json: Vec<u8>,
    expert: Expert,
    stats: Stats,
}

impl Printers {
    fn packet(&mut self, p: &Packet) {
        let mut out = io::sink();
        if output::shown(p) {
            output::write_line(&mut out, &mut self.line, &mut self.clock, p).expect("sink");
        } else {
            self.clock.relative(p.ts);
        }
        output::write_ndjson(
            &mut out,
            &mut self.json,
            &p.events,
            &p.notes,
            p.number,
            p.ts,
            p.flow,
        )
        .expect("sink");
        let _ = output::info_of(&p.events);
        for e in &p.events {
            self.stats.add_event(e);
            for n in &e.notes {
                self.expert.add(n, e.frame);
                self.stats.add_note(n);
            }
        }
        for n in &p.notes {
            self.expert.add(n, p.number);
            self.stats.add_note(n);
        }
    }

    fn flushed(&mut self, events: &[Event], notes: &[Note], last: u64) {
        if events.is_empty() && notes.is_empty() {
            return;
        }
        let mut out = io::sink();
        output::write_flushed_lines(&mut out, &mut self.line, &mut self.clock, events)
            .expect("sink");
        let ts = events.last().map(|e| e.time).unwrap_or_default();
        output::write_ndjson(&mut out, &mut self.json, events, notes, last, ts, None)
            .expect("sink");
        for e in events {
            self.stats.add_event(e);
            for n in &e.notes {
                self.expert.add(n, e.frame);
            }
        }
        for n in notes {
            self.expert.add(n, 0);
            self.stats.add_note(n);
        }
    }
}

/// Count as `--stats` does.
fn count(st: &mut Stats, events: &[Event], tallies: &[Tally], notes: &[Note]) {
    for e in events {
        st.add_event(e);
    }
    for t in tallies {
        st.add_tally(t);
    }
    for n in notes {
        st.add_note(n);
    }
}

/// The counts-only dissector beside the full one, and both one's figures.
struct Twin {
    d: Dissector,
    p: Packet,
    counts: Stats,
    full: Stats,
}

fuzz_target!(|data: &[u8]| {
    let Some(h) = header(data) else {
        return;
    };
    if !xmppscope::link::supported(h.linktype) {
        return;
    }
    let mut d = Dissector::new(config(h.zone));
    let mut twin = (h.zone & 64 != 0).then(|| Twin {
        d: Dissector::new(Config {
            counts_only: true,
            keep_xml: false,
            keep_tree: false,
            ..config(h.zone)
        }),
        p: Packet::default(),
        counts: Stats::default(),
        full: Stats::default(),
    });
    let mut pr = Printers {
        clock: Clock::default(),
        line: String::new(),
        json: Vec::new(),
        expert: Expert::default(),
        stats: Stats::default(),
    };
    let mut packet = Packet::default();
    let rd = |b: &[u8]| -> u32 {
        let b: [u8; 4] = b.try_into().unwrap_or_default();
        if h.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let mut rest = data.get(24..).unwrap_or_default();
    let mut number = 0u64;
    while rest.len() >= 16 {
        let (rh, body) = rest.split_at(16);
        let secs = rd(&rh[0..4]);
        let frac = rd(&rh[4..8]);
        let caplen = rd(&rh[8..12]) as usize;
        let wire_len = rd(&rh[12..16]);
        if caplen > MAX_RECORD || caplen > body.len() {
            break; // libpcap: "truncated dump file" or a bogus record
        }
        let (frame, next) = body.split_at(caplen);
        rest = next;
        number += 1;
        let ts = Timestamp {
            secs: i64::from(secs),
            nanos: if h.nanos {
                frac
            } else {
                frac.wrapping_mul(1000)
            },
        };
        d.dissect(number, ts, h.linktype, frame, wire_len, &mut packet);
        pr.packet(&packet);
        let (events, notes) = d.take_flushed();
        pr.flushed(&events, &notes, number);
        if let Some(t) = twin.as_mut() {
            t.d.dissect(number, ts, h.linktype, frame, wire_len, &mut t.p);
            count(&mut t.counts, &t.p.events, &t.p.tallies, &t.p.notes);
            let (ce, cn) = t.d.take_flushed();
            count(&mut t.counts, &ce, &[], &cn);
            count(&mut t.full, &packet.events, &packet.tallies, &packet.notes);
            count(&mut t.full, &events, &[], &notes);
        }
        let _ = d.buffered_bytes();
    }
    d.finish(number);
    let (events, notes) = d.take_flushed();
    pr.flushed(&events, &notes, number);
    if let Some(mut t) = twin {
        t.d.finish(number);
        let (ce, cn) = t.d.take_flushed();
        count(&mut t.counts, &ce, &[], &cn);
        count(&mut t.full, &events, &[], &notes);
        t.counts.set_counters(t.d.counters());
        t.full.set_counters(d.counters());
        assert_eq!(
            format!("{:?}", t.full),
            format!("{:?}", t.counts),
            "counts-only statistics differ from the full dissector's"
        );
    }
    let _ = pr.expert.to_text();
    pr.stats.set_counters(d.counters());
    let _ = pr.stats.to_text();
    assert_eq!(d.open_flows(), 0, "flows left open after finish");
});

//! Headless printers: tshark-like lines, NDJSON events, statistics.

pub mod expert;
pub mod stats;

use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;

use crate::model::{Event, EventKind, Note, Packet, Proto, Timestamp};

/// Should this packet get a line in the default view (like `-Y xmpp`)?
#[must_use]
pub fn shown(p: &Packet) -> bool {
    matches!(p.proto(), Proto::Xmpp | Proto::Tls)
}

/// The Info column for a set of events completed in one frame: one item per
/// event; the lone `XML` of a declaration only when nothing else is there.
#[must_use]
pub fn info_of(events: &[Event]) -> String {
    let mut s = String::new();
    push_info(&mut s, events);
    s
}

fn push_info(s: &mut String, events: &[Event]) {
    let alone = events.len() == 1;
    // A decrypted application-data record that carried XMPP is shown by its XMPP, as tshark does.
    let has_xmpp = events.iter().any(|e| e.kind != EventKind::Tls);
    let mut first = true;
    for e in events {
        if e.kind == EventKind::XmlDecl && !alone {
            continue;
        }
        if has_xmpp && e.decrypted && e.kind == EventKind::Tls && e.name == "Application Data" {
            continue;
        }
        if !first {
            s.push_str(", ");
        }
        first = false;
        s.push_str(&e.info);
    }
}

/// Formats times relative to the first frame, like tshark's default.
#[derive(Debug, Default)]
pub struct Clock {
    first: Option<Timestamp>,
}

impl Clock {
    /// Note `ts` as the first frame's time if there was none yet.
    pub fn start(&mut self, ts: Timestamp) {
        self.first.get_or_insert(ts);
    }

    pub fn relative(&mut self, ts: Timestamp) -> f64 {
        let first = *self.first.get_or_insert(ts);
        ts.since(first)
    }

    /// `ts` relative to the first frame as `S.uuuuuu` (rounded to the
    /// microsecond), right-aligned to 11 characters, without going through
    /// floating point (this is on every printed line).
    pub fn write_relative(&mut self, buf: &mut String, ts: Timestamp) {
        let first = *self.first.get_or_insert(ts);
        // In 64 bits (differences up to ~292 years): no 128-bit division
        // on every line.
        let ns64 = ts
            .secs
            .checked_sub(first.secs)
            .and_then(|d| d.checked_mul(1_000_000_000))
            .and_then(|d| d.checked_add(i64::from(ts.nanos) - i64::from(first.nanos)));
        if let Some(ns) = ns64 {
            // |ns| <= 2^63: adding 500 cannot overflow.
            let us = (ns.unsigned_abs() + 500) / 1000;
            let mut digits = Digits::default();
            // At least "0" + six decimals.
            let d = digits.fill_min(us, 7);
            let width = usize::from(ns < 0) + d.len() + 1;
            for _ in width..11 {
                buf.push(' ');
            }
            if ns < 0 {
                buf.push('-');
            }
            let (int, frac) = d
                .split_at_checked(d.len().saturating_sub(6))
                .unwrap_or((d, &[]));
            push_ascii(buf, int);
            buf.push('.');
            push_ascii(buf, frac);
            return;
        }
        let ns = (i128::from(ts.secs) - i128::from(first.secs)) * 1_000_000_000
            + (i128::from(ts.nanos) - i128::from(first.nanos));
        let us = (ns.unsigned_abs() + 500) / 1000;
        let (Ok(int), Ok(frac)) = (u64::try_from(us / 1_000_000), u64::try_from(us % 1_000_000))
        else {
            // Beyond 584,000 years: the formatter can have it.
            let sign = if ns < 0 { "-" } else { "" };
            let v = format!("{sign}{}.{:06}", us / 1_000_000, us % 1_000_000);
            let _ = write!(buf, "{v:>11}");
            return;
        };
        let mut digits = Digits::default();
        let int = digits.fill(int);
        let width = usize::from(ns < 0) + int.len() + 7;
        for _ in width..11 {
            buf.push(' ');
        }
        if ns < 0 {
            buf.push('-');
        }
        push_ascii(buf, int);
        buf.push('.');
        let mut f = Digits::default();
        push_ascii(buf, f.fill_min(frac, 6));
    }
}

/// One tshark-like line:
/// `No. Time Source → Destination Protocol Length Info`.
pub fn write_line(
    w: &mut impl Write,
    buf: &mut String,
    clock: &mut Clock,
    p: &Packet,
) -> io::Result<()> {
    write_line_named(w, buf, clock, p, None)
}

/// [`write_line`], with Source and Destination shown by name when the
/// capture taught one ([`crate::names`]; `-n` passes `None`).
pub fn write_line_named(
    w: &mut impl Write,
    buf: &mut String,
    clock: &mut Clock,
    p: &Packet,
    names: Option<&crate::names::Names>,
) -> io::Result<()> {
    buf.clear();
    push_line_head(buf, clock, p);
    if let (Some(s), Some(d)) = (p.src, p.dst) {
        push_endpoints(buf, s, d, names);
    }
    push_line_tail(buf, p);
    w.write_all(buf.as_bytes())
}

/// A line's start: number and time, up to the addresses.
pub fn push_line_head(buf: &mut String, clock: &mut Clock, p: &Packet) {
    push_padded(buf, p.number, 6);
    buf.push(' ');
    clock.write_relative(buf, p.ts);
    buf.push(' ');
}

/// `source → destination`, by the names learnt when there are.
pub fn push_endpoints(
    buf: &mut String,
    s: std::net::IpAddr,
    d: std::net::IpAddr,
    names: Option<&crate::names::Names>,
) {
    match names.and_then(|n| n.name_of(&s)) {
        Some(n) => buf.push_str(n),
        None => push_addr(buf, s),
    }
    buf.push_str(" → ");
    match names.and_then(|n| n.name_of(&d)) {
        Some(n) => buf.push_str(n),
        None => push_addr(buf, d),
    }
}

/// A line's end after the addresses: protocol, length, Info, newline.
pub fn push_line_tail(buf: &mut String, p: &Packet) {
    buf.push(' ');
    buf.push_str(p.proto().as_str());
    buf.push(' ');
    push_padded(buf, u64::from(p.len), 0);
    buf.push(' ');
    push_info(buf, &p.events);
    buf.push('\n');
}

/// Room for the decimal digits of a `u64`, written without the formatting
/// machinery (numbers are on every line).
struct Digits {
    buf: [u8; 20],
}

impl Default for Digits {
    fn default() -> Self {
        Self { buf: [b'0'; 20] }
    }
}

impl Digits {
    /// `n` in decimal (ASCII digits).
    fn fill(&mut self, n: u64) -> &[u8] {
        self.fill_min(n, 1)
    }

    /// `n` in decimal, with leading zeros to at least `min` (≤ 20) digits.
    /// Two digits a step.
    fn fill_min(&mut self, mut n: u64, min: usize) -> &[u8] {
        const PAIRS: &[u8; 200] = b"\
            0001020304050607080910111213141516171819\
            2021222324252627282930313233343536373839\
            4041424344454647484950515253545556575859\
            6061626364656667686970717273747576777879\
            8081828384858687888990919293949596979899";
        let len = self.buf.len();
        let mut at = len;
        while n >= 100 && at >= 2 {
            // n % 100 < 100: the cast cannot truncate.
            let p = 2 * (n % 100) as usize;
            n /= 100;
            at -= 2;
            if let (Some(d), Some(s)) = (self.buf.get_mut(at..at + 2), PAIRS.get(p..p + 2)) {
                d.copy_from_slice(s);
            }
        }
        while let Some(next) = at.checked_sub(1) {
            at = next;
            if let Some(d) = self.buf.get_mut(at) {
                // n % 10 < 10: the cast cannot truncate.
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 {
                break;
            }
        }
        // The buffer starts as all '0': those before `at` are the zeros.
        let at = at.min(len.saturating_sub(min));
        self.buf.get(at..).unwrap_or_default()
    }
}

/// ASCII bytes appended one by one (short runs: cheaper than validating
/// them as UTF-8 and copying). The mask tells the compiler each is one
/// byte of UTF-8 (the callers only pass ASCII: it changes nothing).
fn push_ascii(buf: &mut String, bytes: &[u8]) {
    buf.reserve(bytes.len());
    for &c in bytes {
        buf.push(char::from(c & 0x7f));
    }
}

/// `n` in decimal, right-aligned to `width` (this is on every line).
fn push_padded(buf: &mut String, n: u64, width: usize) {
    let mut digits = Digits::default();
    let s = digits.fill(n);
    for _ in s.len()..width {
        buf.push(' ');
    }
    push_ascii(buf, s);
}

/// An address as `Display` writes it, IPv4 without the formatter.
fn push_addr(buf: &mut String, a: std::net::IpAddr) {
    match a {
        std::net::IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf.push('.');
                }
                if o >= 100 {
                    buf.push(char::from(b'0' + o / 100));
                }
                if o >= 10 {
                    buf.push(char::from(b'0' + o / 10 % 10));
                }
                buf.push(char::from(b'0' + o % 10));
            }
        }
        std::net::IpAddr::V6(v6) => {
            if v6.to_ipv4_mapped().is_some() {
                let _ = write!(buf, "{a}");
                return;
            }
            // RFC 5952 as `Display` does it: lowercase hex groups, the first
            // longest run of two or more zero groups written `::`.
            let seg = v6.segments();
            let (mut best, mut best_len, mut cur, mut cur_len) = (0, 0, 0, 0);
            for (i, &g) in seg.iter().enumerate() {
                if g == 0 {
                    if cur_len == 0 {
                        cur = i;
                    }
                    cur_len += 1;
                    if cur_len > best_len {
                        (best, best_len) = (cur, cur_len);
                    }
                } else {
                    cur_len = 0;
                }
            }
            let groups = |buf: &mut String, gs: &[u16]| {
                for (i, g) in gs.iter().enumerate() {
                    if i > 0 {
                        buf.push(':');
                    }
                    push_hex(buf, *g);
                }
            };
            if best_len > 1 {
                groups(buf, seg.get(..best).unwrap_or_default());
                buf.push_str("::");
                groups(buf, seg.get(best + best_len..).unwrap_or_default());
            } else {
                groups(buf, &seg);
            }
        }
    }
}

/// A 16-bit group in lowercase hex without leading zeros.
fn push_hex(buf: &mut String, g: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut started = false;
    for shift in [12u16, 8, 4, 0] {
        let nibble = usize::from((g >> shift) & 0xf);
        if nibble != 0 || started || shift == 0 {
            started = true;
            if let Some(&c) = HEX.get(nibble) {
                buf.push(char::from(c));
            }
        }
    }
}

/// Lines for events that left the pipeline outside their own frame (end of
/// capture, evicted flows): one line per frame, like the others.
pub fn write_flushed_lines(
    w: &mut impl Write,
    buf: &mut String,
    clock: &mut Clock,
    events: &[Event],
) -> io::Result<()> {
    let mut start = 0;
    while start < events.len() {
        let frame = events.get(start).map_or(0, |e| e.frame);
        let end = events
            .iter()
            .skip(start)
            .position(|e| e.frame != frame)
            .map_or(events.len(), |n| start + n);
        let group = events.get(start..end).unwrap_or_default();
        if let Some(first) = group.first() {
            buf.clear();
            let rel = clock.relative(first.time);
            let proto = if group.iter().any(|e| e.kind != EventKind::Tls) {
                "XMPP"
            } else {
                "TLS"
            };
            let _ = writeln!(
                buf,
                "{:>6} {:>11.6} {} → {} {} - {}",
                frame,
                rel,
                first.src,
                first.dst,
                proto,
                info_of(group)
            );
            w.write_all(buf.as_bytes())?;
        }
        start = end;
    }
    Ok(())
}

#[derive(Serialize)]
struct JsonEvent<'a> {
    frame: u64,
    frames: &'a [u64],
    time: f64,
    src: String,
    sport: u16,
    dst: String,
    dport: u16,
    flow: u32,
    dir: &'static str,
    kind: EventKind,
    name: &'a str,
    ns: &'a str,
    #[serde(rename = "type")]
    typ: Option<&'a str>,
    id: Option<&'a str>,
    from: Option<&'a str>,
    to: Option<&'a str>,
    info: &'a str,
    chat_state: Option<&'static str>,
    has_body: bool,
    offset: u64,
    len: u64,
    xml: &'a str,
    notes: &'a [Note],
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_to: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_in: Option<u64>,
    /// Present (true) only for events read from decrypted TLS.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    decrypted: bool,
}

/// Written after an IQ response: the link seen from the request's side
/// (`frame` is the request, `response_in` the response), so that a reader
/// of the stream has both directions of the link without a second pass.
#[derive(Serialize)]
struct JsonIqLink<'a> {
    kind: &'static str,
    frame: u64,
    flow: u32,
    id: Option<&'a str>,
    response_in: u64,
    response_time: Option<f64>,
}

#[derive(Serialize)]
struct JsonNote<'a> {
    frame: u64,
    time: f64,
    kind: &'static str,
    flow: Option<u32>,
    note: &'a Note,
}

/// One JSON object per event, then one per frame-level note.
pub fn write_ndjson(
    w: &mut impl Write,
    buf: &mut Vec<u8>,
    events: &[Event],
    notes: &[Note],
    frame: u64,
    ts: Timestamp,
    flow: Option<u32>,
) -> io::Result<()> {
    buf.clear();
    for e in events {
        let j = JsonEvent {
            frame: e.frame,
            frames: &e.frames,
            time: e.time.as_f64(),
            src: e.src.to_string(),
            sport: e.sport,
            dst: e.dst.to_string(),
            dport: e.dport,
            flow: e.flow,
            dir: e.dir.as_str(),
            kind: e.kind,
            name: &e.name,
            ns: &e.ns,
            typ: e.typ.as_deref(),
            id: e.id.as_deref(),
            from: e.from.as_deref(),
            to: e.to.as_deref(),
            info: &e.info,
            chat_state: e.chat_state.map(crate::model::ChatState::as_str),
            has_body: e.has_body,
            offset: e.offset,
            len: e.len,
            xml: &e.xml,
            notes: &e.notes,
            details: e.details.as_ref(),
            response_to: e.response_to,
            response_time: e.response_time,
            response_in: e.response_in,
            decrypted: e.decrypted,
        };
        serde_json::to_writer(&mut *buf, &j).map_err(io::Error::other)?;
        buf.push(b'\n');
        if let Some(req) = e.response_to {
            let link = JsonIqLink {
                kind: "iq_link",
                frame: req,
                flow: e.flow,
                id: e.id.as_deref(),
                response_in: e.frame,
                response_time: e.response_time,
            };
            serde_json::to_writer(&mut *buf, &link).map_err(io::Error::other)?;
            buf.push(b'\n');
        }
    }
    for n in notes {
        let j = JsonNote {
            frame,
            time: ts.as_f64(),
            kind: "note",
            flow,
            note: n,
        };
        serde_json::to_writer(&mut *buf, &j).map_err(io::Error::other)?;
        buf.push(b'\n');
    }
    w.write_all(buf)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The hand-written number, time and address formatting writes what
    /// `format!` writes.
    #[test]
    fn fast_formatting_matches_the_formatter() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut buf = String::new();
        for n in [0, 1, 9, 10, 99_999, 999_999, 1_000_000, u64::MAX] {
            buf.clear();
            push_padded(&mut buf, n, 6);
            assert_eq!(buf, format!("{n:>6}"));
        }
        let first = Timestamp {
            secs: 1_368_619_200,
            nanos: 123_456_789,
        };
        let mut cases = vec![
            (first.secs, first.nanos),
            (first.secs, first.nanos + 499),
            (first.secs, first.nanos + 500),
            (first.secs - 1, 999_999_999),
            (first.secs - 100_000, 0),
            (first.secs + 99_999, 999_999_600),
            (i64::MAX, 999_999_999),
            (i64::MIN, 0),
        ];
        for _ in 0..2000 {
            let v = next();
            cases.push((
                first.secs + (v % 5_000_000) as i64 - 1_000,
                (v >> 32) as u32 % 1_000_000_000,
            ));
        }
        for (secs, nanos) in cases {
            let ts = Timestamp { secs, nanos };
            let mut clock = Clock::default();
            clock.relative(first);
            buf.clear();
            clock.write_relative(&mut buf, ts);
            let ns = (i128::from(secs) - i128::from(first.secs)) * 1_000_000_000
                + (i128::from(nanos) - i128::from(first.nanos));
            let us = (ns.abs() + 500) / 1000;
            let sign = if ns < 0 { "-" } else { "" };
            let want = format!("{sign}{}.{:06}", us / 1_000_000, us % 1_000_000);
            assert_eq!(buf, format!("{want:>11}"), "{secs} {nanos}");
        }
        for _ in 0..2000 {
            let v = next();
            let a = std::net::IpAddr::from((v as u32).to_be_bytes());
            buf.clear();
            push_addr(&mut buf, a);
            assert_eq!(buf, a.to_string());
        }
        let mut v6: Vec<std::net::Ipv6Addr> = [
            "::",
            "::1",
            "1::",
            "2001:db8::1",
            "2001:db8:0:0:1:0:0:1",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "fe80::1:0:0:0",
            "0:0:1::",
            "1:0:1:0:1:0:1:0",
            "ffff::ffff",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        for _ in 0..20_000 {
            // Groups that are often zero, to exercise the `::` choice.
            let mut seg = [0u16; 8];
            let bits = next();
            for (i, g) in seg.iter_mut().enumerate() {
                if bits >> (i * 2) & 3 == 0 {
                    *g = (next() >> 40) as u16 >> (bits >> (16 + i * 4) & 15);
                }
            }
            v6.push(std::net::Ipv6Addr::from(seg));
        }
        for a in v6 {
            let a = std::net::IpAddr::V6(a);
            buf.clear();
            push_addr(&mut buf, a);
            assert_eq!(buf, a.to_string());
        }
    }
}

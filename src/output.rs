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
    pub fn relative(&mut self, ts: Timestamp) -> f64 {
        let first = *self.first.get_or_insert(ts);
        ts.since(first)
    }

    /// `ts` relative to the first frame as `S.uuuuuu` (rounded to the
    /// microsecond), right-aligned to 11 characters, without going through
    /// floating point (this is on every printed line).
    pub fn write_relative(&mut self, buf: &mut String, ts: Timestamp) {
        let first = *self.first.get_or_insert(ts);
        let ns = (i128::from(ts.secs) - i128::from(first.secs)) * 1_000_000_000
            + (i128::from(ts.nanos) - i128::from(first.nanos));
        let us = (ns.abs() + 500) / 1000;
        let sign = if ns < 0 { "-" } else { "" };
        let start = buf.len();
        let _ = write!(buf, "{sign}{}.{:06}", us / 1_000_000, us % 1_000_000);
        let width = buf.len() - start;
        for _ in width..11 {
            buf.insert(start, ' ');
        }
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
    let _ = write!(buf, "{:>6} ", p.number);
    clock.write_relative(buf, p.ts);
    buf.push(' ');
    if let (Some(s), Some(d)) = (p.src, p.dst) {
        match (
            names.and_then(|n| n.name_of(&s)),
            names.and_then(|n| n.name_of(&d)),
        ) {
            (None, None) => {
                let _ = write!(buf, "{s} → {d}");
            }
            (sn, dn) => {
                let _ = match sn {
                    Some(n) => write!(buf, "{n}"),
                    None => write!(buf, "{s}"),
                };
                buf.push_str(" → ");
                let _ = match dn {
                    Some(n) => write!(buf, "{n}"),
                    None => write!(buf, "{d}"),
                };
            }
        }
    }
    let _ = write!(buf, " {} {} ", p.proto().as_str(), p.len);
    push_info(buf, &p.events);
    buf.push('\n');
    w.write_all(buf.as_bytes())
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

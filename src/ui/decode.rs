//! Details on demand: the selected packet's bytes, events (with XML) and
//! notes; a flow's transcript; search over Info and XML.
//!
//! The index keeps no XML, so a packet is decoded again when it is shown:
//! its flow's frames, from the flow's first one, are re-read by offset and
//! fed to a fresh [`Dissector`] with the same configuration (plus XML and
//! element trees). A few dissectors are kept per flow, so moving down a flow
//! only decodes the new frames, and recent results are cached. A frame is
//! returned only once the frames after it have been decoded too
//! ([`LOOKAHEAD`]), so that a SASL secret split over several frames is known
//! and masked in every one of them.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use regex::Regex;

use super::xml;
use crate::capture::FileSource;
use crate::dissect::{Config, Dissector};
use crate::link;
use crate::model::{Dir, Event, EventKind, Note, Packet, Timestamp};
use crate::output;

use super::index::{Cat, category};
use super::pcapidx::{self, FrameFile};

/// Frames decoded past the one asked for, to see elements it starts complete.
pub const LOOKAHEAD: usize = 16;
/// Details kept for quick return.
const CACHE: usize = 512;
/// Per-flow dissectors kept.
const SESSIONS: usize = 8;
/// Lines of a transcript.
pub const MAX_TRANSCRIPT: usize = 200_000;

/// One frame to decode: its row, place in the file, time and wire length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLoc {
    pub row: u32,
    pub offset: u64,
    pub ts: Timestamp,
    pub len: u32,
}

/// Decode the packet at `row`: `chain` holds its flow's frames from the
/// first up to `row`, then up to [`LOOKAHEAD`] more (just `row` for a frame
/// without flow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailReq {
    pub row: u32,
    pub flow: Option<u32>,
    pub chain: Vec<FrameLoc>,
}

/// Everything about one packet the panes show.
#[derive(Debug, Clone)]
pub struct Detail {
    pub row: u32,
    /// The frame's bytes, or why they are not available.
    pub bytes: Result<Vec<u8>, String>,
    /// Where the TCP payload is in `bytes`.
    pub payload: Option<Range<usize>>,
    /// Bytes never to show (SASL secrets), unless `--show-secrets`.
    pub secrets: Vec<Range<usize>>,
    /// Events completed in this frame, with XML (secrets masked).
    pub events: Vec<Event>,
    /// Notes about the frame itself.
    pub notes: Vec<Note>,
}

impl Default for Detail {
    fn default() -> Self {
        Self {
            row: 0,
            bytes: Err(String::new()),
            payload: None,
            secrets: Vec::new(),
            events: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// A flow's whole conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowReq {
    pub flow: u32,
    pub chain: Vec<FrameLoc>,
}

/// One line of a transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct TLine {
    /// Row (frame number - 1) where the event completed.
    pub row: u32,
    pub time: Timestamp,
    pub dir: Dir,
    pub cat: Cat,
    pub text: String,
    pub notes: Vec<String>,
}

/// A flow's transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub flow: u32,
    pub lines: Vec<TLine>,
    pub truncated: bool,
    /// Why it could not be made, if it could not.
    pub problem: Option<String>,
}

struct Session {
    flow: u32,
    dissector: Dissector,
    /// Last row fed.
    last_row: u32,
}

/// Decodes packets and flows on request. Runs on its own thread in the
/// TUI; tests call it directly.
pub struct Decoder {
    frames: Option<FrameFile>,
    why_not: String,
    linktype: i32,
    cfg: Config,
    sessions: VecDeque<Session>,
    cache: VecDeque<Detail>,
    /// SASL secrets seen per flow: masked wherever their bytes show up
    /// again (retransmissions, pieces in neighbouring frames).
    secrets: HashMap<u32, Vec<Vec<u8>>>,
}

/// Secrets remembered per flow.
const MAX_SECRETS: usize = 16;
/// Shortest piece of a secret masked at a payload's edge.
const MIN_PIECE: usize = 4;

/// Mask every piece of these secrets in a frame's payload.
fn mask_known(known: &[Vec<u8>], d: &mut Detail) {
    let (Ok(bytes), Some(p)) = (&d.bytes, &d.payload) else {
        return;
    };
    let Some(pl) = bytes.get(p.clone()) else {
        return;
    };
    for s in known {
        for r in secret_ranges(pl, s) {
            d.secrets.push(p.start + r.start..p.start + r.end);
        }
    }
}

/// Where pieces of `secret` are in `payload`: whole copies, a start at the
/// end, an end at the start, or a payload that is all inside the secret.
fn secret_ranges(payload: &[u8], secret: &[u8]) -> Vec<Range<usize>> {
    let n = secret.len();
    let mut out: Vec<Range<usize>> = memchr::memmem::find_iter(payload, secret)
        .map(|at| at..at + n)
        .collect();
    if n <= 1 || payload.is_empty() {
        return out;
    }
    let max = (n - 1).min(payload.len());
    if let Some(k) = (MIN_PIECE..=max)
        .rev()
        .find(|k| payload.ends_with(secret.get(..*k).unwrap_or_default()))
    {
        out.push(payload.len() - k..payload.len());
    }
    if let Some(k) = (MIN_PIECE..=max)
        .rev()
        .find(|k| payload.starts_with(secret.get(n - *k..).unwrap_or_default()))
    {
        out.push(0..k);
    }
    if payload.len() >= MIN_PIECE
        && payload.len() < n
        && memchr::memmem::find(secret, payload).is_some()
    {
        out.push(0..payload.len());
    }
    merge(&mut out);
    out
}

/// Sort ranges and join the ones that overlap or touch.
fn merge(v: &mut Vec<Range<usize>>) {
    v.sort_by_key(|r| (r.start, r.end));
    let mut out: Vec<Range<usize>> = Vec::with_capacity(v.len());
    for r in v.drain(..) {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    *v = out;
}

impl Decoder {
    /// A decoder for the capture at `path` (link type as libpcap reported
    /// it) with the loader's configuration.
    #[must_use]
    pub fn new(path: &str, linktype: i32, cfg: &Config) -> Self {
        let (frames, why_not) = if pcapidx::rereadable(path) {
            match FrameFile::open(Path::new(path)) {
                Ok(f) => (Some(f), String::new()),
                Err(e) => (None, format!("cannot re-read {path}: {e}")),
            }
        } else {
            (
                None,
                "bytes and XML are not kept when reading standard input".into(),
            )
        };
        Self {
            frames,
            why_not,
            linktype,
            cfg: Config {
                keep_xml: true,
                keep_tree: true,
                ..cfg.clone()
            },
            sessions: VecDeque::new(),
            cache: VecDeque::new(),
            secrets: HashMap::new(),
        }
    }

    fn cached(&self, row: u32) -> Option<&Detail> {
        self.cache.iter().find(|d| d.row == row)
    }

    fn remember(&mut self, d: Detail) {
        if let Some(i) = self.cache.iter().position(|c| c.row == d.row) {
            self.cache.remove(i);
        }
        if self.cache.len() >= CACHE {
            self.cache.pop_front();
        }
        self.cache.push_back(d);
    }

    fn read(&self, loc: &FrameLoc) -> Result<Vec<u8>, String> {
        let Some(f) = &self.frames else {
            return Err(self.why_not.clone());
        };
        if loc.offset == u64::MAX {
            return Err("the frame's place in the file is unknown".into());
        }
        f.read(loc.offset)
            .map_err(|e| format!("cannot re-read the frame: {e}"))
    }

    /// Decode one packet.
    pub fn detail(&mut self, req: &DetailReq) -> Arc<Detail> {
        if let Some(d) = self.cached(req.row) {
            return Arc::new(d.clone());
        }
        let Some(flow) = req.flow else {
            let loc = req.chain.iter().find(|l| l.row == req.row).copied();
            let d = match loc {
                Some(loc) => {
                    let mut dis = Dissector::new(self.cfg.clone());
                    let mut p = Packet::default();
                    self.feed_one(&mut dis, &loc, &mut p)
                }
                None => Detail {
                    row: req.row,
                    bytes: Err("nothing to decode".into()),
                    ..Detail::default()
                },
            };
            self.remember(d.clone());
            return Arc::new(d);
        };
        // A kept dissector that has not passed this row yet, and whose last
        // frame is in the chain, carries on from there.
        let mut start = 0;
        let mut session = None;
        if let Some(i) = self.sessions.iter().position(|s| s.flow == flow)
            && let Some(s) = self.sessions.remove(i)
            && let Some(p) = req.chain.iter().position(|l| l.row == s.last_row)
            && s.last_row < req.row
        {
            start = p + 1;
            session = Some(s);
        }
        let mut s = session.unwrap_or_else(|| Session {
            flow,
            dissector: Dissector::new(self.cfg.clone()),
            last_row: 0,
        });
        let mut packet = Packet::default();
        let mut fresh: Vec<Detail> = Vec::new();
        for loc in req.chain.get(start..).unwrap_or_default() {
            let mut d = self.feed_one(&mut s.dissector, loc, &mut packet);
            for e in &mut d.events {
                e.flow = flow;
            }
            s.last_row = loc.row;
            fresh.push(d);
        }
        if !self.cfg.show_secrets {
            mask_secrets(&mut fresh, &mut self.cache);
            let known = self.secrets.entry(flow).or_default();
            for e in fresh.iter().flat_map(|d| d.events.iter()) {
                for s in event_secrets(e) {
                    if known.len() < MAX_SECRETS && !known.iter().any(|k| *k == s.as_bytes()) {
                        known.push(s.into_bytes());
                    }
                }
            }
            for d in &mut fresh {
                mask_known(known, d);
                merge(&mut d.secrets);
            }
        }
        for d in fresh {
            self.remember(d);
        }
        if self.sessions.len() >= SESSIONS {
            self.sessions.pop_front();
        }
        self.sessions.push_back(s);
        let d = self.cached(req.row).cloned().unwrap_or_else(|| Detail {
            row: req.row,
            bytes: Err("could not decode this frame".into()),
            ..Detail::default()
        });
        Arc::new(d)
    }

    fn feed_one(&self, dis: &mut Dissector, loc: &FrameLoc, p: &mut Packet) -> Detail {
        let bytes = self.read(loc);
        let mut d = Detail {
            row: loc.row,
            ..Detail::default()
        };
        if let Ok(data) = &bytes {
            dis.dissect(
                u64::from(loc.row) + 1,
                loc.ts,
                self.linktype,
                data,
                loc.len,
                p,
            );
            d.payload = payload_range(self.linktype, data);
            d.events = std::mem::take(&mut p.events);
            d.notes = std::mem::take(&mut p.notes);
            let (ev, notes) = dis.take_flushed();
            d.events.extend(ev);
            d.notes.extend(notes);
        }
        d.bytes = bytes;
        d
    }

    /// The whole conversation of a flow.
    pub fn follow(&mut self, req: &FollowReq) -> Transcript {
        let mut t = Transcript {
            flow: req.flow,
            lines: Vec::new(),
            truncated: false,
            problem: None,
        };
        let mut dis = Dissector::new(self.cfg.clone());
        let mut p = Packet::default();
        let mut last = 0;
        for loc in &req.chain {
            let data = match self.read(loc) {
                Ok(d) => d,
                Err(e) => {
                    t.problem = Some(e);
                    return t;
                }
            };
            last = u64::from(loc.row) + 1;
            dis.dissect(last, loc.ts, self.linktype, &data, loc.len, &mut p);
            let (flushed, _) = dis.take_flushed();
            for e in p.events.iter().chain(flushed.iter()) {
                push_line(&mut t, e);
            }
            if t.truncated {
                return t;
            }
        }
        dis.finish(last);
        let (flushed, _) = dis.take_flushed();
        for e in &flushed {
            push_line(&mut t, e);
        }
        t
    }
}

fn push_line(t: &mut Transcript, e: &Event) {
    if e.kind == EventKind::XmlDecl || e.kind == EventKind::Keepalive {
        return;
    }
    if t.lines.len() >= MAX_TRANSCRIPT {
        t.truncated = true;
        return;
    }
    t.lines.push(TLine {
        row: u32::try_from(e.frame.saturating_sub(1)).unwrap_or(u32::MAX),
        time: e.time,
        dir: e.dir,
        cat: category(e),
        text: transcript_text(e),
        notes: e.notes.iter().map(ToString::to_string).collect(),
    });
}

/// One event as a transcript line: the Info, with a message's whole body.
#[must_use]
pub fn transcript_text(e: &Event) -> String {
    let body = e
        .element
        .as_deref()
        .and_then(|el| el.child("body"))
        .map(|b| b.text.trim().to_owned())
        .filter(|b| !b.is_empty());
    let Some(body) = body else {
        return e.info.clone();
    };
    // The Info quotes a shortened body: `MESSAGE > bob "Hi Bob! Are…" [active]`.
    let (head, tail) = match e.info.find(" \"") {
        Some(i) => {
            let head = e.info.get(..i).unwrap_or_default();
            let after = e.info.get(i + 2..).unwrap_or_default();
            let tail = after
                .find("\" ")
                .map_or("", |j| after.get(j + 1..).unwrap_or_default());
            (head, tail)
        }
        None => (e.info.as_str(), ""),
    };
    let body: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("{head}: {body}{tail}")
}

/// Where the TCP payload sits in a frame.
#[must_use]
pub fn payload_range(linktype: i32, data: &[u8]) -> Option<Range<usize>> {
    let seg = link::tcp_segment(linktype, data).ok()?;
    let start = (seg.payload.as_ptr() as usize).checked_sub(data.as_ptr() as usize)?;
    let end = start + seg.payload.len();
    (end <= data.len()).then_some(start..end)
}

/// The secrets of an event, as they are on the wire.
///
/// The dissector decides what is secret (SASL credentials and proofs,
/// dialback keys, component handshakes, legacy passwords) and masks it in
/// the event's XML; a text of the element that the masked XML no longer
/// holds is one of those.
fn event_secrets(e: &Event) -> Vec<String> {
    let Some(el) = e.element.as_deref() else {
        return Vec::new();
    };
    if !e.xml.contains(xml::MASK) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut stack = vec![el];
    while let Some(el) = stack.pop() {
        let t = el.text.trim();
        if t.len() >= 2 && !e.xml.contains(t) {
            out.push(t.to_owned());
        }
        stack.extend(el.children.iter());
    }
    out
}

/// Mark the bytes of every SASL secret in the frames that carried it.
fn mask_secrets(fresh: &mut [Detail], cache: &mut VecDeque<Detail>) {
    let secrets: Vec<(Vec<u64>, String)> = fresh
        .iter()
        .flat_map(|d| d.events.iter())
        // Read from decrypted TLS: on the wire it is ciphertext.
        .filter(|e| !e.decrypted)
        .flat_map(|e| event_secrets(e).into_iter().map(|s| (e.frames.clone(), s)))
        .collect();
    for (frames, secret) in secrets {
        // The payloads of the frames, in order, as one stream.
        let mut joined = Vec::new();
        let mut parts: Vec<(u32, usize, Range<usize>)> = Vec::new();
        for f in &frames {
            let row = u32::try_from(f.saturating_sub(1)).unwrap_or(u32::MAX);
            let d = fresh
                .iter()
                .find(|d| d.row == row)
                .or_else(|| cache.iter().find(|d| d.row == row));
            if let Some(d) = d
                && let (Ok(bytes), Some(p)) = (&d.bytes, &d.payload)
                && let Some(pl) = bytes.get(p.clone())
            {
                parts.push((row, joined.len(), p.clone()));
                joined.extend_from_slice(pl);
            }
        }
        let mut hits: Vec<Range<usize>> = memchr::memmem::find_iter(&joined, secret.as_bytes())
            .map(|at| at..at + secret.len())
            .collect();
        if hits.is_empty() {
            // Written differently on the wire (character references): hide
            // the whole payload of every frame of the element.
            hits.push(0..joined.len());
        }
        for (row, at, payload) in &parts {
            let local = *at..*at + payload.len();
            let mut ranges = Vec::new();
            for h in &hits {
                let s = h.start.max(local.start);
                let e = h.end.min(local.end);
                if s < e {
                    ranges
                        .push(payload.start + (s - local.start)..payload.start + (e - local.start));
                }
            }
            let targets = fresh
                .iter_mut()
                .filter(|d| d.row == *row)
                .chain(cache.iter_mut().filter(|d| d.row == *row));
            for d in targets {
                d.secrets.extend(ranges.iter().cloned());
            }
        }
    }
}

/// Search hits: rows whose Info or XML matches.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHits {
    pub generation: u64,
    pub rows: Vec<u32>,
    /// Frames searched so far.
    pub scanned: u64,
    pub done: bool,
}

/// Does this packet's Info or XML match?
#[must_use]
pub fn packet_matches(re: &Regex, events: &[Event]) -> bool {
    if events.is_empty() {
        return false;
    }
    re.is_match(&output::info_of(events))
        || events
            .iter()
            .any(|e| re.is_match(&e.xml) || re.is_match(&e.info))
}

/// Search the whole capture (a second pass with XML kept, secrets masked as
/// configured), reporting hits through `send` as they are found. Stops when
/// `send` returns false.
pub fn search(
    path: &str,
    cfg: &Config,
    count: Option<u64>,
    re: &Regex,
    generation: u64,
    send: &mut dyn FnMut(SearchHits) -> bool,
) {
    let mut src = match FileSource::open(path) {
        Ok(s) => s,
        Err(_) => {
            send(SearchHits {
                generation,
                rows: Vec::new(),
                scanned: 0,
                done: true,
            });
            return;
        }
    };
    let lt = src.linktype();
    let mut d = Dissector::new(Config {
        keep_xml: true,
        keep_tree: false,
        ..cfg.clone()
    });
    let mut p = Packet::default();
    let mut hits = Vec::new();
    let mut last = 0u64;
    let mut last_sent = std::time::Instant::now();
    loop {
        if count.is_some_and(|c| last >= c) {
            break;
        }
        let Ok(Some(f)) = src.next_frame() else { break };
        last = f.number;
        d.dissect(f.number, f.ts, lt, f.data, f.len, &mut p);
        let (flushed, _) = d.take_flushed();
        if packet_matches(re, &p.events) || packet_matches(re, &flushed) {
            hits.push(u32::try_from(last - 1).unwrap_or(u32::MAX));
        }
        if last_sent.elapsed() >= super::loader::BATCH_INTERVAL {
            last_sent = std::time::Instant::now();
            if !send(SearchHits {
                generation,
                rows: std::mem::take(&mut hits),
                scanned: last,
                done: false,
            }) {
                return;
            }
        }
    }
    d.finish(last);
    let (flushed, _) = d.take_flushed();
    if last > 0
        && packet_matches(re, &flushed)
        && hits.last() != Some(&u32::try_from(last - 1).unwrap_or(0))
    {
        hits.push(u32::try_from(last - 1).unwrap_or(u32::MAX));
    }
    send(SearchHits {
        generation,
        rows: hits,
        scanned: last,
        done: true,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::index::Index;
    use crate::ui::loader;
    use std::sync::atomic::AtomicBool;

    const PLAIN: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/captures/prosody-plain-signin-chat.pcap"
    );

    fn index() -> Index {
        let mut idx = Index::default();
        loader::load(
            PLAIN,
            &Config::default(),
            None,
            &Arc::new(AtomicBool::new(false)),
            &mut |l| {
                idx.apply(l.batch);
                true
            },
        );
        idx
    }

    fn locs(idx: &Index, chain: &[(u32, u64)]) -> Vec<FrameLoc> {
        let first = idx.first_ts.unwrap_or_default();
        chain
            .iter()
            .map(|(row, off)| {
                let r = idx.row(*row).unwrap();
                let ns = i64::from(first.nanos) + r.ts;
                FrameLoc {
                    row: *row,
                    offset: *off,
                    ts: Timestamp {
                        secs: first.secs + ns.div_euclid(1_000_000_000),
                        nanos: u32::try_from(ns.rem_euclid(1_000_000_000)).unwrap(),
                    },
                    len: r.len,
                }
            })
            .collect()
    }

    fn detail(dec: &mut Decoder, idx: &Index, row: u32) -> Arc<Detail> {
        let r = idx.row(row).unwrap();
        let chain = locs(idx, &idx.flow_chain(row));
        dec.detail(&DetailReq {
            row,
            flow: (r.flow != crate::ui::index::NONE).then_some(r.flow),
            chain,
        })
    }

    #[test]
    fn auth_frame_is_decoded_and_masked() {
        let idx = index();
        let mut dec = Decoder::new(PLAIN, 1, &Config::default());
        // Frame 8: AUTH PLAIN.
        let d = detail(&mut dec, &idx, 7);
        assert_eq!(d.events.len(), 1);
        let xml = &d.events[0].xml;
        assert!(xml.starts_with("<auth"), "{xml}");
        assert!(xml.contains("[masked: use --show-secrets]"), "{xml}");
        assert!(!xml.contains("AGFsaWNl"), "{xml}");
        let bytes = d.bytes.as_ref().unwrap();
        let p = d.payload.clone().unwrap();
        assert!(bytes[p].starts_with(b"<auth"));
        assert_eq!(d.secrets.len(), 1);
        let s = d.secrets[0].clone();
        assert!(bytes[s].starts_with(b"AGFsaWNl"));
        // Walking on down the same flow reuses the dissector and the cache.
        let d9 = detail(&mut dec, &idx, 8);
        assert_eq!(d9.events[0].info, "SUCCESS");
        let d4 = detail(&mut dec, &idx, 3);
        assert!(d4.events.iter().any(|e| e.info == "STREAM > localhost"));
    }

    #[test]
    fn show_secrets_reveals() {
        let idx = index();
        let cfg = Config {
            show_secrets: true,
            ..Config::default()
        };
        let mut dec = Decoder::new(PLAIN, 1, &cfg);
        let d = detail(&mut dec, &idx, 7);
        assert!(d.events[0].xml.contains("AGFsaWNl"));
        assert!(d.secrets.is_empty());
    }

    #[test]
    fn follow_gives_the_conversation() {
        let idx = index();
        let mut dec = Decoder::new(PLAIN, 1, &Config::default());
        let f = idx.flow(0).unwrap();
        let chain = locs(&idx, &idx.flow_chain(f.last_row));
        let t = dec.follow(&FollowReq { flow: 0, chain });
        assert_eq!(t.problem, None);
        let texts: Vec<&str> = t.lines.iter().map(|l| l.text.as_str()).collect();
        assert!(texts.contains(&"AUTH PLAIN user=alice"), "{texts:?}");
        assert!(
            texts
                .iter()
                .any(|t| t.contains("Hi Bob! Are you free for lunch today?")),
            "{texts:?}"
        );
        assert_eq!(t.lines[0].dir, Dir::ClientToServer);
        assert!(t.lines.iter().any(|l| l.dir == Dir::ServerToClient));
        assert!(!texts.iter().any(|t| t.contains("alice-wonderland")));
    }

    #[test]
    fn search_finds_xml_and_info_but_not_secrets() {
        let run = |pat: &str| {
            let re = Regex::new(pat).unwrap();
            let mut rows = Vec::new();
            search(PLAIN, &Config::default(), None, &re, 1, &mut |h| {
                rows.extend(h.rows);
                true
            });
            rows
        };
        assert_eq!(run("AUTH PLAIN"), vec![7, 25]);
        // Only in the XML: the roster group names.
        assert!(!run("Friends").is_empty());
        assert!(run("YWxpY2U|AGFsaWNl|wonderland").is_empty());
    }

    #[test]
    fn transcript_text_keeps_the_whole_body() {
        let idx = index();
        let mut dec = Decoder::new(PLAIN, 1, &Config::default());
        // Frame 51: alice's message.
        let d = detail(&mut dec, &idx, 50);
        let e = &d.events[0];
        assert_eq!(
            transcript_text(e),
            "MESSAGE > bob@localhost: Hi Bob! Are you free for lunch today? [active]"
        );
    }

    #[test]
    fn secret_pieces() {
        let s = b"AGFsaWNlAGFsaWNl";
        assert_eq!(secret_ranges(b"xx AGFsaWNlAGFsaWNl yy", s), vec![3..19]);
        assert_eq!(secret_ranges(b"<auth>AGFsa", s), vec![6..11]);
        assert!(
            secret_ranges(b"WNl</auth>", s).is_empty(),
            "3 bytes: too short to tell"
        );
        assert_eq!(secret_ranges(b"aWNl</auth>", s), vec![0..4]);
        assert_eq!(secret_ranges(b"FsaWNlAG", s), vec![0..8]);
        assert!(secret_ranges(b"nothing here", s).is_empty());
        assert!(secret_ranges(b"", s).is_empty());
    }

    #[test]
    fn a_retransmitted_secret_is_masked_too() {
        let idx = index();
        let mut dec = Decoder::new(PLAIN, 1, &Config::default());
        let _ = detail(&mut dec, &idx, 7);
        // Pretend frame 8 came again later in the flow: same bytes, no event.
        let mut again = dec.cached(7).unwrap().clone();
        again.row = 90;
        again.events.clear();
        again.secrets.clear();
        mask_known(dec.secrets.get(&0).unwrap(), &mut again);
        assert_eq!(again.secrets.len(), 1);
        let r = again.secrets[0].clone();
        assert!(again.bytes.as_ref().unwrap()[r].starts_with(b"AGFsaWNl"));
    }

    #[test]
    fn non_tcp_and_unreadable() {
        let mut dec = Decoder::new("-", 1, &Config::default());
        let d = dec.detail(&DetailReq {
            row: 0,
            flow: None,
            chain: vec![FrameLoc {
                row: 0,
                offset: 0,
                ts: Timestamp::default(),
                len: 0,
            }],
        });
        assert!(d.bytes.as_ref().unwrap_err().contains("standard input"));
    }
}

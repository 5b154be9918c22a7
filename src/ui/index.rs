//! The TUI's compact index: one fixed-size packed row per packet (32 bytes),
//! Info strings LZ4-compressed in blocks ([`super::textstore`]), addresses
//! and address pairs interned, one summary per TCP flow.
//!
//! The loader thread turns dissected [`Packet`]s into rows with an
//! [`IndexBuilder`] and ships them in [`Batch`]es; the UI thread appends the
//! batches to its [`Index`]. Whole packets are never kept: the selected
//! packet's bytes and XML are re-read from the file on demand
//! ([`super::decode`]).

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use crate::model::{Dir, Event, EventKind, Note, Packet, Proto, Severity, Timestamp};
use crate::output;
use crate::xmpp::info;

use super::textstore::TextStore;

/// "No value" for the `u32` fields of a row.
pub const NONE: u32 = u32::MAX;

/// What an event is about, for colours, the `kind` filter and the row's
/// dominant colour. Ordered by how much it matters on a row (the most
/// important category of a row's events colours it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Cat {
    /// Nothing (TCP without XMPP, non-TCP).
    None = 0,
    /// Keepalives, stream management, CSI, anything else.
    Other = 1,
    /// TLS records (opaque).
    Tls = 2,
    /// Sign-in steps: XML declaration, stream header, features, bind, session, stream end.
    Stream = 3,
    Iq = 4,
    Presence = 5,
    Message = 6,
    /// STARTTLS negotiation and SASL.
    Sasl = 7,
    /// Error stanzas, stream errors, SASL failures, junk.
    Error = 8,
}

impl Cat {
    pub const ALL: [Self; 8] = [
        Self::Other,
        Self::Tls,
        Self::Stream,
        Self::Iq,
        Self::Presence,
        Self::Message,
        Self::Sasl,
        Self::Error,
    ];

    #[must_use]
    pub fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Other,
            2 => Self::Tls,
            3 => Self::Stream,
            4 => Self::Iq,
            5 => Self::Presence,
            6 => Self::Message,
            7 => Self::Sasl,
            8 => Self::Error,
            _ => Self::None,
        }
    }

    /// The bit of this category in [`Row::kinds`] (0 for `None`).
    #[must_use]
    pub fn bit(self) -> u8 {
        match self {
            Self::None => 0,
            c => 1 << ((c as u8) - 1),
        }
    }

    /// The name used by the `kind` filter and the help.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Other => "other",
            Self::Tls => "tls",
            Self::Stream => "stream",
            Self::Iq => "iq",
            Self::Presence => "presence",
            Self::Message => "message",
            Self::Sasl => "sasl",
            Self::Error => "error",
        }
    }

    /// Parse a `kind` filter word (with a few synonyms).
    #[must_use]
    pub fn parse(word: &str) -> Option<Self> {
        Some(match word.to_ascii_lowercase().as_str() {
            "other" | "keepalive" | "sm" => Self::Other,
            "tls" => Self::Tls,
            "stream" | "signin" | "sign-in" | "features" | "bind" => Self::Stream,
            "iq" => Self::Iq,
            "presence" => Self::Presence,
            "message" | "msg" | "chat" => Self::Message,
            "sasl" | "auth" | "starttls" => Self::Sasl,
            "error" | "errors" => Self::Error,
            _ => return None,
        })
    }
}

/// Classify one event.
#[must_use]
pub fn category(e: &Event) -> Cat {
    match e.kind {
        EventKind::Tls => Cat::Tls,
        EventKind::XmlDecl | EventKind::StreamHeader | EventKind::StreamEnd => Cat::Stream,
        EventKind::Keepalive => Cat::Other,
        EventKind::Junk => Cat::Error,
        EventKind::Stanza | EventKind::Nonza => {
            if e.typ.as_deref() == Some("error") {
                return Cat::Error;
            }
            let local = e.name.rsplit(':').next().unwrap_or(&e.name);
            match &*e.ns {
                info::NS_SASL => {
                    return if local == "failure" {
                        Cat::Error
                    } else {
                        Cat::Sasl
                    };
                }
                info::NS_TLS => {
                    return if local == "failure" {
                        Cat::Error
                    } else {
                        Cat::Sasl
                    };
                }
                info::NS_STREAMS => {
                    return if local == "error" {
                        Cat::Error
                    } else {
                        Cat::Stream
                    };
                }
                _ => {}
            }
            match local {
                "message" => Cat::Message,
                "presence" => Cat::Presence,
                "iq" if e.info.contains(" BIND") || e.info.contains(" SESSION") => Cat::Stream,
                "iq" => Cat::Iq,
                _ => Cat::Other,
            }
        }
    }
}

/// Stanza types the `type` filter knows, one bit each in [`Row::types`].
pub const TYPES: [&str; 15] = [
    "chat",
    "groupchat",
    "normal",
    "headline",
    "get",
    "set",
    "result",
    "error",
    "available",
    "unavailable",
    "subscribe",
    "subscribed",
    "unsubscribe",
    "unsubscribed",
    "probe",
];

/// The bit of a stanza type word.
#[must_use]
pub fn type_bit(word: &str) -> Option<u16> {
    TYPES
        .iter()
        .position(|t| t.eq_ignore_ascii_case(word))
        .map(|i| 1 << i)
}

fn event_type_bit(e: &Event) -> u16 {
    if e.kind != EventKind::Stanza {
        return 0;
    }
    let local = e.name.rsplit(':').next().unwrap_or(&e.name);
    let typ = match (local, e.typ.as_deref()) {
        (_, Some(t)) => t,
        ("message", None) => "normal",
        ("presence", None) => "available",
        _ => return 0,
    };
    type_bit(typ).unwrap_or(0)
}

/// `Row::flags` bits.
pub mod flag {
    /// Direction: client to server.
    pub const C2S: u8 = 1;
    /// Direction: server to client.
    pub const S2C: u8 = 2;
    /// Severity of the worst expert note (0 none, 1 note, 2 warn, 3 error) in bits 2..4.
    pub const SEV_SHIFT: u8 = 2;
    pub const SEV_MASK: u8 = 0b1100;
    /// Events or notes flushed outside their frame are attached to this row.
    pub const EXTRA: u8 = 16;
    /// Some of its events were decrypted from TLS (`--keylog`).
    pub const DECRYPTED: u8 = 32;
}

/// `Row::tcp` bits.
pub mod tcpflag {
    pub const SYN: u8 = 1;
    pub const FIN: u8 = 2;
    pub const RST: u8 = 4;
    pub const ACK: u8 = 8;
    /// The segment carries payload.
    pub const DATA: u8 = 16;
}

/// One packet of the index, unpacked ([`Index::row`]); the index keeps it
/// packed in 32 bytes (28 of row, 4 of flow id). Its frame number is its
/// position + 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// Byte offset of the frame's record in the file ([`u64::MAX`]: unknown).
    pub offset: u64,
    /// Nanoseconds since the first frame.
    pub ts: i64,
    /// Length on the wire.
    pub len: u32,
    /// Flow id ([`NONE`]: not TCP).
    pub flow: u32,
    /// Interned source and destination addresses ([`NONE`]: none).
    pub src: u32,
    pub dst: u32,
    /// Info string id ([`NONE`]: made up when drawn).
    pub info: u32,
    /// Stanza types of its events ([`TYPES`] bits).
    pub types: u16,
    /// [`Proto`] as a number.
    pub proto: u8,
    /// The most important [`Cat`] of its events.
    pub cat: u8,
    /// All categories of its events ([`Cat::bit`]).
    pub kinds: u8,
    /// [`flag`] bits.
    pub flags: u8,
    /// [`tcpflag`] bits.
    pub tcp: u8,
}

/// Rows per block of [`Index::bases`]: a row keeps its time and file
/// offset as deltas from its block's first row.
const ROW_BLOCK: usize = 256;
/// [`PackedRow::off`]: the offset is unknown ([`u64::MAX`]).
const OFF_UNKNOWN: u32 = u32::MAX - 1;
/// [`PackedRow::off`]: time and offset did not fit; see [`Index::wide`].
const OFF_WIDE: u32 = u32::MAX;
/// The range of a 40-bit signed time delta (±549 s around the block's first row).
const TS_MIN: i64 = -(1 << 39);
const TS_MAX: i64 = (1 << 39) - 1;

/// A row as the index keeps it: 28 bytes, plus its flow id in a column of
/// its own ([`Index::flow_ids`], 4 bytes): 32 bytes per packet. Time and
/// file offset are deltas from the first row of its block of [`ROW_BLOCK`]
/// rows (nanoseconds kept; rows that do not fit go to a side table), the
/// two addresses are one interned pair, and the previous row of the flow is
/// found again by scanning the flow column ([`Index::flow_chain`]) instead
/// of being stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PackedRow {
    /// File offset minus the block's ([`OFF_UNKNOWN`], [`OFF_WIDE`]).
    off: u32,
    info: u32,
    len: u32,
    /// Interned (src, dst) address ids.
    pair: u32,
    types: u16,
    /// Nanoseconds since the block's first row, signed 40-bit little-endian.
    ts: [u8; 5],
    proto: u8,
    cat: u8,
    kinds: u8,
    flags: u8,
    tcp: u8,
}

// The index's budget per packet: 28 bytes of row and 4 of flow id, leaving
// room for the compressed Info text within 48 bytes per packet in all.
const _: () = assert!(std::mem::size_of::<PackedRow>() == 28);

fn ts_to_40(d: i64) -> [u8; 5] {
    let b = d.to_le_bytes();
    [b[0], b[1], b[2], b[3], b[4]]
}

fn ts_from_40(b: [u8; 5]) -> i64 {
    let v = i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], 0, 0, 0]);
    // Sign-extend from bit 39.
    (v << 24) >> 24
}

impl PackedRow {
    /// Copy everything but time, offset, addresses and flow.
    fn set_meta(&mut self, r: &Row) {
        self.info = r.info;
        self.len = r.len;
        self.types = r.types;
        self.proto = r.proto;
        self.cat = r.cat;
        self.kinds = r.kinds;
        self.flags = r.flags;
        self.tcp = r.tcp;
    }
}

impl Row {
    #[must_use]
    pub fn proto(&self) -> Proto {
        match self.proto {
            1 => Proto::Tcp,
            2 => Proto::Xmpp,
            3 => Proto::Tls,
            _ => Proto::Other,
        }
    }

    /// Shown in the default view (like `-Y xmpp`).
    #[must_use]
    pub fn is_xmpp(&self) -> bool {
        matches!(self.proto(), Proto::Xmpp | Proto::Tls)
    }

    #[must_use]
    pub fn cat(&self) -> Cat {
        Cat::from_u8(self.cat)
    }

    #[must_use]
    pub fn dir(&self) -> Option<Dir> {
        if self.flags & flag::C2S != 0 {
            Some(Dir::ClientToServer)
        } else if self.flags & flag::S2C != 0 {
            Some(Dir::ServerToClient)
        } else {
            None
        }
    }

    /// Worst note severity: 0 none, 1 note, 2 warn, 3 error.
    #[must_use]
    pub fn severity(&self) -> u8 {
        (self.flags & flag::SEV_MASK) >> flag::SEV_SHIFT
    }

    fn raise_severity(&mut self, sev: u8) {
        if sev > self.severity() {
            self.flags = (self.flags & !flag::SEV_MASK) | (sev << flag::SEV_SHIFT);
        }
    }
}

fn proto_code(p: Proto) -> u8 {
    match p {
        Proto::Other => 0,
        Proto::Tcp => 1,
        Proto::Xmpp => 2,
        Proto::Tls => 3,
    }
}

fn sev_code(s: Severity) -> u8 {
    match s {
        Severity::Chat | Severity::Note => 1,
        Severity::Warn => 2,
        Severity::Error => 3,
    }
}

/// How far a flow got through the sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SignIn {
    /// TCP only so far.
    Tcp,
    /// The capture began after the stream was opened.
    MidSession,
    /// A stream header was seen.
    Stream,
    /// STARTTLS asked.
    StartTls,
    /// Encrypted (STARTTLS proceeded, or direct TLS).
    Tls,
    /// SASL `<auth/>` sent.
    Auth,
    /// SASL `<success/>`.
    Authenticated,
    /// Resource bound.
    Bound,
    /// Initial presence sent.
    Online,
}

impl SignIn {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::MidSession => "mid-session",
            Self::Stream => "stream open",
            Self::StartTls => "starttls",
            Self::Tls => "tls",
            Self::Auth => "authenticating",
            Self::Authenticated => "authenticated",
            Self::Bound => "bound",
            Self::Online => "online",
        }
    }
}

/// JIDs listed per flow; more are only counted.
pub const MAX_FLOW_JIDS: usize = 8;

/// One TCP flow, as the flows view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSummary {
    pub id: u32,
    pub client: (IpAddr, u16),
    pub server: (IpAddr, u16),
    /// XML seen.
    pub xmpp: bool,
    /// TLS records seen.
    pub tls: bool,
    pub jids: Vec<String>,
    pub more_jids: u32,
    pub packets: u64,
    pub bytes: u64,
    pub first: Timestamp,
    pub last: Timestamp,
    pub first_row: u32,
    pub last_row: u32,
    pub signin: SignIn,
    /// SASL failed (or the stream errored) on the way.
    pub failed: bool,
    /// `</stream:stream>`, FIN or RST seen.
    pub closed: bool,
    /// `user=` of a SASL PLAIN auth, when the Info shows it.
    pub user: Option<String>,
    pub notes: u32,
}

impl FlowSummary {
    /// "XMPP", "XMPP+TLS", "TLS" or "other".
    #[must_use]
    pub fn class(&self) -> &'static str {
        match (self.xmpp, self.tls) {
            (true, true) => "XMPP+TLS",
            (true, false) => "XMPP",
            (false, true) => "TLS",
            (false, false) => "other",
        }
    }

    /// The sign-in column: how far it got, and how it ended.
    #[must_use]
    pub fn signin_text(&self) -> String {
        let mut s = String::from(self.signin.as_str());
        if let Some(u) = &self.user {
            s.push_str(" (");
            s.push_str(u);
            s.push(')');
        }
        if self.failed {
            s.push_str(", failed");
        }
        if self.closed {
            s.push_str(", closed");
        }
        s
    }

    /// Does this flow involve `jid` (bare JIDs match any resource)?
    #[must_use]
    pub fn has_jid(&self, jid: &str) -> bool {
        let want_bare = !jid.contains('/');
        self.jids.iter().any(|j| {
            if want_bare {
                j.split('/')
                    .next()
                    .is_some_and(|b| b.eq_ignore_ascii_case(jid))
            } else {
                j.eq_ignore_ascii_case(jid)
            }
        })
    }

    fn note_jid(&mut self, jid: &str) {
        if jid.is_empty() || self.jids.iter().any(|j| j == jid) {
            return;
        }
        if self.jids.len() < MAX_FLOW_JIDS {
            self.jids.push(jid.to_owned());
        } else {
            self.more_jids = self.more_jids.saturating_add(1);
        }
    }

    fn add_event(&mut self, e: &Event) {
        let local = e.name.rsplit(':').next().unwrap_or(&e.name);
        match e.kind {
            EventKind::Tls => {
                self.tls = true;
                self.signin = self.signin.max(SignIn::Tls);
            }
            EventKind::StreamHeader => {
                self.xmpp = true;
                self.signin = self.signin.max(SignIn::Stream);
            }
            EventKind::StreamEnd => {
                self.xmpp = true;
                self.closed = true;
            }
            EventKind::XmlDecl | EventKind::Keepalive => self.xmpp = true,
            EventKind::Junk => {}
            EventKind::Stanza | EventKind::Nonza => {
                self.xmpp = true;
                if self.signin == SignIn::Tcp {
                    self.signin = SignIn::MidSession;
                }
                match (&*e.ns, local) {
                    (info::NS_TLS, "starttls") => self.signin = self.signin.max(SignIn::StartTls),
                    (info::NS_TLS, "failure") | (info::NS_SASL, "failure") => self.failed = true,
                    (info::NS_SASL, "auth") => {
                        self.signin = self.signin.max(SignIn::Auth);
                        if let Some(u) = e.info.split_whitespace().find(|w| w.starts_with("user="))
                        {
                            self.user = Some(u.trim_start_matches("user=").to_owned());
                        }
                    }
                    (info::NS_SASL, "success") => {
                        self.signin = self.signin.max(SignIn::Authenticated);
                    }
                    (info::NS_STREAMS, "error") => self.failed = true,
                    _ => {}
                }
                if local == "iq" && e.typ.as_deref() == Some("result") && e.info.contains(" BIND") {
                    self.signin = self.signin.max(SignIn::Bound);
                }
                if local == "presence"
                    && e.dir == Dir::ClientToServer
                    && e.typ.is_none()
                    && self.signin >= SignIn::Bound
                {
                    self.signin = self.signin.max(SignIn::Online);
                }
                if e.kind == EventKind::Stanza {
                    for j in [&e.from, &e.to].into_iter().flatten() {
                        self.note_jid(j);
                    }
                }
            }
        }
        self.notes = self
            .notes
            .saturating_add(u32::try_from(e.notes.len()).unwrap_or(u32::MAX));
    }
}

/// Strings the builder shipped, in id order.
#[derive(Debug, Clone, Default)]
pub struct NewStrings {
    pub text: String,
    pub lens: Vec<u32>,
}

/// What the loader sends: rows and everything new they refer to.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Row index of `rows[0]`.
    pub first_row: u32,
    pub rows: Vec<Row>,
    /// Rows already shipped that changed (flushed events attached).
    pub row_updates: Vec<(u32, Row)>,
    pub strings: NewStrings,
    pub addrs: Vec<IpAddr>,
    /// Flows that changed in this batch (whole summaries).
    pub flows: Vec<FlowSummary>,
    /// Events and notes flushed outside their frame, attached to a row.
    pub extras: Vec<(u32, Vec<Event>, Vec<Note>)>,
    pub first_ts: Option<Timestamp>,
    /// Names learnt in this batch (DNS answers, TLS SNI, stream domains),
    /// for the filter bar's `host NAME`.
    pub names: Option<crate::names::Names>,
}

/// FNV-1a: the builder's maps hash an address or a short string per
/// packet; SipHash's DoS resistance is not needed for them.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// Bounded de-duplication of Info strings (PRESENCE, IQ(get) … repeat a lot).
const DEDUPE_MAX: usize = 1 << 16;
/// A string is only reused while it is this recent (in strings): older
/// ones are stored again, so that the rows of any stretch of the capture
/// refer to a few neighbouring compressed blocks (a scan of all Info
/// decompresses each block about once), and a repeat costs a few bytes of
/// compressed text.
const DEDUPE_WINDOW: u32 = 16 * super::textstore::BLOCK as u32;
// The window must fit in the text store's cache, with the current block.
const _: () =
    assert!((DEDUPE_WINDOW as usize) / super::textstore::BLOCK + 2 <= super::textstore::CACHED);

/// Builds rows on the loader thread.
#[derive(Debug, Default)]
pub struct IndexBuilder {
    next_row: u32,
    next_string: u32,
    dedupe: FastMap<Box<str>, u32>,
    addr_ids: FastMap<IpAddr, u32>,
    flows: FastMap<u32, FlowSummary>,
    /// The last two addresses looked up (most packets repeat them).
    recent: [(Option<IpAddr>, u32); 2],
    dirty_flows: Vec<u32>,
    first_ts: Option<Timestamp>,
    /// Rows of this batch, and rows of earlier batches touched again.
    batch: Batch,
    last_row: Option<Row>,
}

impl IndexBuilder {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Rows built so far.
    #[must_use]
    pub fn rows(&self) -> u32 {
        self.next_row
    }

    /// Rows waiting in the current batch.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.batch.rows.len()
    }

    fn string(&mut self, s: &str) -> u32 {
        if let Some(id) = self.dedupe.get(s)
            && self.next_string.saturating_sub(*id) <= DEDUPE_WINDOW
        {
            return *id;
        }
        let id = self.next_string;
        self.next_string = self.next_string.saturating_add(1);
        self.batch.strings.text.push_str(s);
        self.batch
            .strings
            .lens
            .push(u32::try_from(s.len()).unwrap_or(u32::MAX));
        if self.dedupe.len() >= DEDUPE_MAX {
            self.dedupe.clear();
        }
        self.dedupe.insert(s.into(), id);
        id
    }

    fn addr(&mut self, a: Option<IpAddr>) -> u32 {
        let Some(a) = a else { return NONE };
        for (r, id) in &self.recent {
            if *r == Some(a) {
                return *id;
            }
        }
        let id = if let Some(id) = self.addr_ids.get(&a) {
            *id
        } else {
            let id = u32::try_from(self.addr_ids.len()).unwrap_or(NONE);
            self.addr_ids.insert(a, id);
            self.batch.addrs.push(a);
            id
        };
        self.recent = [(Some(a), id), self.recent[0]];
        id
    }

    fn touch_flow(&mut self, id: u32) {
        if !self.dirty_flows.contains(&id) {
            self.dirty_flows.push(id);
        }
    }

    /// Add the next packet. `offset` is its record's place in the file
    /// ([`u64::MAX`] if unknown), `tcp` its [`tcpflag`] bits.
    pub fn add(&mut self, p: &Packet, offset: u64, tcp: u8) {
        let first = *self.first_ts.get_or_insert(p.ts);
        if self.batch.first_ts.is_none() && self.next_row == 0 {
            self.batch.first_ts = Some(first);
        }
        let row_idx = self.next_row;
        self.next_row = self.next_row.saturating_add(1);
        let ts = {
            let secs = p.ts.secs.saturating_sub(first.secs);
            let nanos = i64::from(p.ts.nanos) - i64::from(first.nanos);
            secs.saturating_mul(1_000_000_000).saturating_add(nanos)
        };
        let mut row = Row {
            offset,
            ts,
            len: p.len,
            flow: p.flow.unwrap_or(NONE),
            src: self.addr(p.src),
            dst: self.addr(p.dst),
            info: NONE,
            types: 0,
            proto: proto_code(p.proto()),
            cat: 0,
            kinds: 0,
            flags: match p.dir {
                Some(Dir::ClientToServer) => flag::C2S,
                Some(Dir::ServerToClient) => flag::S2C,
                None => 0,
            },
            tcp,
        };
        if !p.events.is_empty() {
            row.info = self.string(&output::info_of(&p.events));
        }
        mark_events(&mut row, &p.events, &p.notes);
        if let (Some(flow), Some(src), Some(dst), Some(dir)) = (p.flow, p.src, p.dst, p.dir) {
            let (client, server) = match dir {
                Dir::ClientToServer => ((src, p.sport), (dst, p.dport)),
                Dir::ServerToClient => ((dst, p.dport), (src, p.sport)),
            };
            let f = self.flows.entry(flow).or_insert_with(|| FlowSummary {
                id: flow,
                client,
                server,
                xmpp: false,
                tls: false,
                jids: Vec::new(),
                more_jids: 0,
                packets: 0,
                bytes: 0,
                first: p.ts,
                last: p.ts,
                first_row: row_idx,
                last_row: NONE,
                signin: SignIn::Tcp,
                failed: false,
                closed: false,
                user: None,
                notes: 0,
            });
            f.last_row = row_idx;
            f.packets += 1;
            f.bytes += u64::from(p.len);
            f.last = p.ts;
            if tcp & (tcpflag::FIN | tcpflag::RST) != 0 {
                f.closed = true;
            }
            f.notes = f
                .notes
                .saturating_add(u32::try_from(p.notes.len()).unwrap_or(u32::MAX));
            for e in &p.events {
                f.add_event(e);
            }
            self.touch_flow(flow);
        }
        self.batch.rows.push(row);
        self.last_row = Some(row);
    }

    /// Events and notes that left the dissector outside a frame of their
    /// own: attached to the last row added.
    pub fn add_flushed(&mut self, events: Vec<Event>, notes: Vec<Note>) {
        if events.is_empty() && notes.is_empty() {
            return;
        }
        let Some(mut row) = self.last_row else { return };
        let idx = self.next_row.saturating_sub(1);
        mark_events(&mut row, &events, &notes);
        if !events.is_empty() && !row.is_xmpp() {
            row.proto = if events.iter().any(|e| e.kind != EventKind::Tls) {
                proto_code(Proto::Xmpp)
            } else {
                proto_code(Proto::Tls)
            };
        }
        row.flags |= flag::EXTRA;
        for e in &events {
            if let Some(f) = self.flows.get_mut(&e.flow) {
                f.add_event(e);
                self.dirty_flows.push(e.flow);
            }
        }
        self.dirty_flows.sort_unstable();
        self.dirty_flows.dedup();
        let first = self.batch.first_row;
        if let Some(r) = idx
            .checked_sub(first)
            .and_then(|i| self.batch.rows.get_mut(i as usize))
        {
            *r = row;
        } else {
            self.batch.row_updates.push((idx, row));
        }
        self.last_row = Some(row);
        self.batch.extras.push((idx, events, notes));
    }

    /// Everything built since the last call.
    pub fn take_batch(&mut self) -> Batch {
        let mut dirty = std::mem::take(&mut self.dirty_flows);
        dirty.sort_unstable();
        let flows = dirty
            .iter()
            .filter_map(|id| self.flows.get(id).cloned())
            .collect();
        let next_first = self.next_row;
        let mut b = std::mem::take(&mut self.batch);
        b.flows = flows;
        self.batch.first_row = next_first;
        b
    }
}

fn mark_events(row: &mut Row, events: &[Event], notes: &[Note]) {
    for e in events {
        let c = category(e);
        row.kinds |= c.bit();
        if c as u8 > row.cat {
            row.cat = c as u8;
        }
        row.types |= event_type_bit(e);
        if e.decrypted {
            row.flags |= flag::DECRYPTED;
        }
        for n in &e.notes {
            row.raise_severity(sev_code(n.severity));
        }
    }
    for n in notes {
        row.raise_severity(sev_code(n.severity));
    }
}

/// The UI thread's index.
#[derive(Debug, Default)]
pub struct Index {
    rows: Vec<PackedRow>,
    /// The flow id of each row (a column of its own: the follow chain scans it).
    flow_ids: Vec<u32>,
    /// (time, file offset) of the first row of each block of [`ROW_BLOCK`] rows.
    bases: Vec<(i64, u64)>,
    /// (row, time, offset) of the rows whose deltas did not fit, by row.
    wide: Vec<(u32, i64, u64)>,
    strings: TextStore,
    addrs: Vec<IpAddr>,
    /// Interned (src, dst) address id pairs.
    pairs: Vec<(u32, u32)>,
    pair_ids: FastMap<(u32, u32), u32>,
    /// Widest address, in characters.
    addr_width: usize,
    flows: Vec<Option<FlowSummary>>,
    extras: BTreeMap<u32, (Vec<Event>, Vec<Note>)>,
    pub first_ts: Option<Timestamp>,
    /// Names learnt from the capture so far.
    pub names: crate::names::Names,
}

/// Heap bytes of the index by part, for the figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Parts {
    /// Packed rows.
    pub rows: usize,
    /// Compressed Info text.
    pub text: usize,
    /// Uncompressed Info text it stands for.
    pub text_raw: usize,
    /// Flow summaries (one per TCP flow, with their JIDs).
    pub flows: usize,
    /// Everything else: block tables (rows and text), the unfinished text
    /// block and the decompression cache, wide rows, addresses and pairs,
    /// flushed events.
    pub other: usize,
}

impl Parts {
    #[must_use]
    pub fn total(&self) -> usize {
        self.rows + self.text + self.flows + self.other
    }
}

impl Index {
    /// Append a batch.
    pub fn apply(&mut self, b: Batch) {
        if self.first_ts.is_none() {
            self.first_ts = b.first_ts;
        }
        let mut at = 0usize;
        for len in b.strings.lens {
            let end = at.saturating_add(len as usize);
            self.strings.push(b.strings.text.get(at..end).unwrap_or(""));
            at = end;
        }
        for a in &b.addrs {
            self.addr_width = self.addr_width.max(a.to_string().len());
        }
        self.addrs.extend(b.addrs);
        self.rows.reserve(b.rows.len());
        for r in &b.rows {
            self.push(r);
        }
        for (i, r) in b.row_updates {
            if let Some(slot) = self.rows.get_mut(i as usize) {
                slot.set_meta(&r);
            }
            if let Some(slot) = self.flow_ids.get_mut(i as usize) {
                *slot = r.flow;
            }
        }
        for f in b.flows {
            let i = f.id as usize;
            if self.flows.len() <= i {
                self.flows.resize(i + 1, None);
            }
            if let Some(slot) = self.flows.get_mut(i) {
                *slot = Some(f);
            }
        }
        for (row, ev, notes) in b.extras {
            let slot = self.extras.entry(row).or_default();
            slot.0.extend(ev);
            slot.1.extend(notes);
        }
        if let Some(n) = b.names {
            self.names.merge(n);
        }
    }

    fn pair(&mut self, src: u32, dst: u32) -> u32 {
        if let Some(last) = self.rows.last()
            && self.pairs.get(last.pair as usize) == Some(&(src, dst))
        {
            return last.pair;
        }
        if let Some(id) = self.pair_ids.get(&(src, dst)) {
            return *id;
        }
        let id = u32::try_from(self.pairs.len()).unwrap_or(NONE);
        self.pairs.push((src, dst));
        self.pair_ids.insert((src, dst), id);
        id
    }

    /// Pack and append one row.
    fn push(&mut self, r: &Row) {
        let i = self.rows.len();
        if i.is_multiple_of(ROW_BLOCK) {
            let off = if r.offset == u64::MAX { 0 } else { r.offset };
            self.bases.push((r.ts, off));
        }
        let (bts, boff) = self.bases.last().copied().unwrap_or((0, 0));
        let ts =
            r.ts.checked_sub(bts)
                .filter(|d| (TS_MIN..=TS_MAX).contains(d));
        let off = if r.offset == u64::MAX {
            Some(OFF_UNKNOWN)
        } else {
            r.offset
                .checked_sub(boff)
                .and_then(|d| u32::try_from(d).ok())
                .filter(|d| *d < OFF_UNKNOWN)
        };
        let pair = self.pair(r.src, r.dst);
        let mut p = PackedRow {
            off: OFF_WIDE,
            info: 0,
            len: 0,
            pair,
            types: 0,
            ts: [0; 5],
            proto: 0,
            cat: 0,
            kinds: 0,
            flags: 0,
            tcp: 0,
        };
        p.set_meta(r);
        if let (Some(ts), Some(off)) = (ts, off) {
            p.ts = ts_to_40(ts);
            p.off = off;
        } else {
            self.wide
                .push((u32::try_from(i).unwrap_or(NONE), r.ts, r.offset));
        }
        self.rows.push(p);
        self.flow_ids.push(r.flow);
    }

    fn unpack(&self, i: usize, p: &PackedRow) -> Row {
        let (ts, offset) = if p.off == OFF_WIDE {
            let key = u32::try_from(i).unwrap_or(NONE);
            self.wide
                .binary_search_by_key(&key, |w| w.0)
                .ok()
                .and_then(|k| self.wide.get(k))
                .map_or((0, u64::MAX), |w| (w.1, w.2))
        } else {
            let (bts, boff) = self.bases.get(i / ROW_BLOCK).copied().unwrap_or((0, 0));
            let off = if p.off == OFF_UNKNOWN {
                u64::MAX
            } else {
                boff.saturating_add(u64::from(p.off))
            };
            (bts.saturating_add(ts_from_40(p.ts)), off)
        };
        let (src, dst) = self
            .pairs
            .get(p.pair as usize)
            .copied()
            .unwrap_or((NONE, NONE));
        Row {
            offset,
            ts,
            len: p.len,
            flow: self.flow_ids.get(i).copied().unwrap_or(NONE),
            src,
            dst,
            info: p.info,
            types: p.types,
            proto: p.proto,
            cat: p.cat,
            kinds: p.kinds,
            flags: p.flags,
            tcp: p.tcp,
        }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Row `i`, unpacked: O(1) (a row whose time or offset did not fit
    /// its block's deltas, rare, costs a binary search of the side table).
    #[must_use]
    pub fn row(&self, i: u32) -> Option<Row> {
        let p = self.rows.get(i as usize)?;
        Some(self.unpack(i as usize, p))
    }

    /// The flow id of row `i` (cheaper than [`Self::row`]).
    #[must_use]
    pub fn flow_of(&self, i: u32) -> Option<u32> {
        self.flow_ids.get(i as usize).copied()
    }

    /// Time of the last row (nanoseconds since the first).
    #[must_use]
    pub fn last_ts(&self) -> i64 {
        self.len()
            .checked_sub(1)
            .and_then(|i| u32::try_from(i).ok())
            .and_then(|i| self.row(i))
            .map_or(0, |r| r.ts)
    }

    /// A string by id ("" for [`NONE`] or unknown).
    #[must_use]
    pub fn string(&self, id: u32) -> String {
        self.strings.get(id as usize)
    }

    /// Call `f` with string `id` without copying it ("" for [`NONE`] or unknown).
    pub fn with_string<R>(&self, id: u32, f: impl FnOnce(&str) -> R) -> R {
        self.strings.with(id as usize, f)
    }

    #[must_use]
    pub fn addr(&self, id: u32) -> Option<IpAddr> {
        self.addrs.get(id as usize).copied()
    }

    /// Widest address, in characters.
    #[must_use]
    pub fn addr_width(&self) -> usize {
        self.addr_width
    }

    #[must_use]
    pub fn flow(&self, id: u32) -> Option<&FlowSummary> {
        self.flows.get(id as usize).and_then(Option::as_ref)
    }

    pub fn flows(&self) -> impl Iterator<Item = &FlowSummary> {
        self.flows.iter().flatten()
    }

    #[must_use]
    pub fn flow_count(&self) -> usize {
        self.flows.iter().flatten().count()
    }

    /// Events and notes flushed onto this row.
    #[must_use]
    pub fn extras(&self, row: u32) -> Option<&(Vec<Event>, Vec<Note>)> {
        self.extras.get(&row)
    }

    /// Blocks of Info text decompressed so far (for the figures).
    #[must_use]
    pub fn text_blocks_decompressed(&self) -> u64 {
        self.strings.misses()
    }

    /// The Info string id of row `i` ([`NONE`]: made up when drawn).
    #[must_use]
    pub fn info_id(&self, i: u32) -> Option<u32> {
        self.rows.get(i as usize).map(|p| p.info)
    }

    /// The Info column of a row.
    #[must_use]
    pub fn info(&self, i: u32) -> String {
        let Some(id) = self.info_id(i) else {
            return String::new();
        };
        let mut s = if id == NONE {
            self.row(i).map(|r| self.synth_info(&r)).unwrap_or_default()
        } else {
            self.string(id)
        };
        if let Some((ev, _)) = self.extras(i) {
            let flushed = output::info_of(ev);
            if !flushed.is_empty() {
                if !s.is_empty() {
                    s.push_str(", ");
                }
                s.push_str("[flushed] ");
                s.push_str(&flushed);
            }
        }
        s
    }

    /// Info for a row without XMPP: ports and TCP flags.
    fn synth_info(&self, r: &Row) -> String {
        let Some(f) = self.flow(r.flow) else {
            return if r.src == NONE {
                "not TCP/IP".into()
            } else {
                "not TCP".into()
            };
        };
        let (sp, dp) = match r.dir() {
            Some(Dir::ServerToClient) => (f.server.1, f.client.1),
            _ => (f.client.1, f.server.1),
        };
        let mut s = format!("{sp} → {dp}");
        let names = [
            (tcpflag::SYN, "SYN"),
            (tcpflag::FIN, "FIN"),
            (tcpflag::RST, "RST"),
            (tcpflag::ACK, "ACK"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(b, _)| r.tcp & b != 0)
            .map(|(_, n)| *n)
            .collect();
        if !set.is_empty() {
            s.push_str(" [");
            s.push_str(&set.join(", "));
            s.push(']');
        }
        if r.tcp & tcpflag::DATA != 0 {
            s.push_str(" data");
        }
        s
    }

    /// Frames of `row`'s flow from its first packet up to `row`, in order:
    /// (row index, file offset). Rows do not keep a link to the previous
    /// row of their flow: this scans the rows from the flow's first one (a
    /// flow id compare per row, a few milliseconds for millions of rows).
    #[must_use]
    pub fn flow_chain(&self, row: u32) -> Vec<(u32, u64)> {
        let Some(flow) = self.flow_of(row) else {
            return Vec::new();
        };
        let first = self
            .flow(flow)
            .filter(|_| flow != NONE)
            .map_or(row, |f| f.first_row.min(row));
        let from = first as usize;
        let ids = self.flow_ids.get(from..=row as usize).unwrap_or_default();
        let mut out = Vec::new();
        // Compare the ids in chunks (vectorised), look at a chunk's rows
        // only when one of them matches.
        let mut base = from;
        for chunk in ids.chunks(64) {
            if chunk.iter().fold(false, |any, f| any | (*f == flow)) {
                for (k, f) in chunk.iter().enumerate() {
                    if *f == flow
                        && let Ok(i) = u32::try_from(base + k)
                        && let Some(r) = self.row(i)
                    {
                        out.push((i, r.offset));
                    }
                }
            }
            base += chunk.len();
        }
        out
    }

    /// Give back the slack of the growing vectors (at the end of loading).
    pub fn shrink(&mut self) {
        self.rows.shrink_to_fit();
        self.flow_ids.shrink_to_fit();
        self.bases.shrink_to_fit();
        self.wide.shrink_to_fit();
        self.strings.shrink();
        self.addrs.shrink_to_fit();
        self.pairs.shrink_to_fit();
        self.pair_ids.shrink_to_fit();
    }

    /// Heap bytes held, by part (capacities, not lengths), and how many
    /// bytes of Info text the compressed text stands for (this decompresses
    /// it all: for the figures only).
    #[must_use]
    pub fn parts(&self) -> Parts {
        Parts {
            text_raw: self.strings.raw_bytes(),
            ..self.heap_parts()
        }
    }

    fn heap_parts(&self) -> Parts {
        let (text, blocks, tail) = self.strings.heap_parts();
        let flows = self.flows.capacity() * std::mem::size_of::<Option<FlowSummary>>()
            + self
                .flows
                .iter()
                .flatten()
                .map(|f| {
                    f.jids.capacity() * std::mem::size_of::<String>()
                        + f.jids.iter().map(String::capacity).sum::<usize>()
                        + f.user.as_ref().map_or(0, String::capacity)
                })
                .sum::<usize>();
        // A B-tree node per entry, roughly, and the events' own vectors
        // (not the strings inside the events: these rows are rare).
        let extras = self
            .extras
            .values()
            .map(|(e, n)| {
                64 + e.capacity() * std::mem::size_of::<Event>()
                    + n.capacity() * std::mem::size_of::<Note>()
            })
            .sum::<usize>();
        // hashbrown: one control byte per bucket beside the entry.
        let pair_map = self.pair_ids.capacity() * (std::mem::size_of::<((u32, u32), u32)>() + 1);
        Parts {
            rows: self.rows.capacity() * std::mem::size_of::<PackedRow>()
                + self.flow_ids.capacity() * 4,
            text,
            text_raw: 0,
            flows,
            other: blocks
                + tail
                + self.bases.capacity() * std::mem::size_of::<(i64, u64)>()
                + self.wide.capacity() * std::mem::size_of::<(u32, i64, u64)>()
                + self.addrs.capacity() * std::mem::size_of::<IpAddr>()
                + self.pairs.capacity() * std::mem::size_of::<(u32, u32)>()
                + pair_map
                + extras,
        }
    }

    /// Heap bytes held by the index (see [`Self::parts`]).
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.heap_parts().total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventKind;
    use std::net::Ipv4Addr;

    /// A real event of the project's capture, reshaped (so these tests do
    /// not depend on every field of [`Event`]).
    fn ev(kind: EventKind, name: &str, ns: &str, typ: Option<&str>, info: &str) -> Event {
        use std::sync::OnceLock;
        static TEMPLATE: OnceLock<Event> = OnceLock::new();
        let mut e = TEMPLATE
            .get_or_init(|| {
                let path = concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/captures/prosody-plain-signin-chat.pcap"
                );
                let mut src = crate::capture::FileSource::open(path).unwrap();
                let lt = src.linktype();
                let mut d = crate::dissect::Dissector::new(crate::dissect::Config::default());
                let mut p = Packet::default();
                loop {
                    let f = src.next_frame().unwrap().unwrap();
                    d.dissect(f.number, f.ts, lt, f.data, f.len, &mut p);
                    if let Some(e) = p.events.first() {
                        break e.clone();
                    }
                }
            })
            .clone();
        e.frame = 1;
        e.frames = vec![1];
        e.flow = 0;
        e.dir = Dir::ClientToServer;
        e.kind = kind;
        e.name = name.into();
        e.ns = ns.into();
        e.typ = typ.map(str::to_owned);
        e.from = None;
        e.to = Some("bob@localhost".into());
        e.info = info.into();
        e.notes.clear();
        e
    }

    #[test]
    fn row_fits_the_budget() {
        assert_eq!(std::mem::size_of::<PackedRow>() + 4, 32);
    }

    fn row(offset: u64, ts: i64, src: u32, dst: u32) -> Row {
        Row {
            offset,
            ts,
            len: u32::MAX,
            flow: 7,
            src,
            dst,
            info: NONE,
            types: 0x7fff,
            proto: 2,
            cat: Cat::Error as u8,
            kinds: 0xff,
            flags: flag::S2C | flag::DECRYPTED,
            tcp: tcpflag::DATA,
        }
    }

    #[test]
    fn ts_40_bits_round_trip() {
        for d in [0, 1, -1, 999_999_999, -999_999_999, TS_MIN, TS_MAX] {
            assert_eq!(ts_from_40(ts_to_40(d)), d, "{d}");
        }
    }

    #[test]
    fn packed_rows_round_trip_extreme_values() {
        let five_gib = 5u64 << 30;
        let rows = vec![
            row(24, 0, 0, 1),
            // Offsets past 4 GiB, in and out of the block's reach.
            row(five_gib, 1, 1, 0),
            row(five_gib + 100, 2, NONE, NONE),
            row(u64::MAX - 1, 3, 0, 1),
            row(u64::MAX, 4, 0, 1),
            // Nanoseconds kept; times far away, backwards, at the extremes.
            row(100, 1_234_567_891, 2, 3),
            row(200, -5, 2, 3),
            row(300, i64::MAX, 2, 3),
            row(400, i64::MIN, 2, 3),
            row(500, TS_MAX, 2, 3),
            row(600, TS_MIN - 1, 2, 3),
            row(24, 86_400 * 365 * 1_000_000_000 + 1, 2, 3),
        ];
        let mut idx = Index::default();
        let mut all = Vec::new();
        // Several blocks: the extremes at the start, the middle and the end of blocks.
        for k in 0..(ROW_BLOCK * 3 + 5) {
            // (A block's first row is its base: an ordinary one here.)
            let r = if let Some(r) = rows.get(k % (ROW_BLOCK - 3)).filter(|_| k % ROW_BLOCK != 0) {
                *r
            } else {
                let k64 = u64::try_from(k).unwrap();
                row(
                    1000 * k64,
                    i64::try_from(k).unwrap() * 1_000_003,
                    u32::try_from(k % 5).unwrap(),
                    1,
                )
            };
            idx.push(&r);
            all.push(r);
        }
        for (i, want) in all.iter().enumerate() {
            let got = idx.row(u32::try_from(i).unwrap()).unwrap();
            assert_eq!(&got, want, "row {i}");
        }
        assert!(idx.row(u32::try_from(all.len()).unwrap()).is_none());
        assert!(
            idx.wide.len() < all.len() / 10,
            "{} wide rows",
            idx.wide.len()
        );
        assert!(idx.pairs.len() <= 8, "{:?}", idx.pairs);
    }

    #[test]
    fn unknown_offsets_do_not_go_wide() {
        // Standard input: no offsets at all.
        let mut idx = Index::default();
        for k in 0..1000i64 {
            idx.push(&row(u64::MAX, k * 1_000_000, 0, 1));
        }
        assert!(idx.wide.is_empty());
        assert_eq!(idx.row(999).unwrap().offset, u64::MAX);
        assert_eq!(idx.row(999).unwrap().ts, 999_000_000);
    }

    #[test]
    fn updates_keep_time_offset_and_addresses() {
        let mut idx = Index::default();
        let r = row(5 << 32, 77, 3, 4);
        idx.push(&r);
        let changed = Row {
            flags: flag::EXTRA,
            cat: Cat::Message as u8,
            ..r
        };
        let mut b = Batch::default();
        b.row_updates.push((0, changed));
        idx.apply(b);
        assert_eq!(idx.row(0).unwrap(), changed);
    }

    #[test]
    fn categories() {
        let c = |k, n, ns, t, i| category(&ev(k, n, ns, t, i));
        assert_eq!(
            c(
                EventKind::Stanza,
                "message",
                "jabber:client",
                Some("chat"),
                "MESSAGE"
            ),
            Cat::Message
        );
        assert_eq!(
            c(
                EventKind::Stanza,
                "iq",
                "jabber:client",
                Some("error"),
                "IQ(error)"
            ),
            Cat::Error
        );
        assert_eq!(
            c(
                EventKind::Stanza,
                "iq",
                "jabber:client",
                Some("set"),
                "IQ(set) BIND"
            ),
            Cat::Stream
        );
        assert_eq!(
            c(EventKind::Nonza, "auth", info::NS_SASL, None, "AUTH"),
            Cat::Sasl
        );
        assert_eq!(
            c(EventKind::Nonza, "failure", info::NS_SASL, None, "FAILURE"),
            Cat::Error
        );
        assert_eq!(
            c(
                EventKind::Nonza,
                "stream:features",
                info::NS_STREAMS,
                None,
                "FEATURES"
            ),
            Cat::Stream
        );
        assert_eq!(c(EventKind::Tls, "handshake", "", None, "TLS"), Cat::Tls);
        assert_eq!(c(EventKind::Keepalive, "", "", None, ""), Cat::Other);
    }

    #[test]
    fn types_and_defaults() {
        assert_eq!(type_bit("chat"), Some(1));
        assert_eq!(type_bit("GET"), Some(1 << 4));
        assert_eq!(type_bit("nope"), None);
        let m = ev(
            EventKind::Stanza,
            "message",
            "jabber:client",
            None,
            "MESSAGE",
        );
        assert_eq!(event_type_bit(&m), type_bit("normal").unwrap_or(0));
        let p = ev(
            EventKind::Stanza,
            "presence",
            "jabber:client",
            None,
            "PRESENCE",
        );
        assert_eq!(event_type_bit(&p), type_bit("available").unwrap_or(0));
    }

    #[test]
    fn builder_interns_and_chains_flows() {
        let mut b = IndexBuilder::new();
        let mut idx = Index::default();
        let lh = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        for n in 1..=4u64 {
            let mut p = Packet {
                number: n,
                ts: Timestamp {
                    secs: 10,
                    nanos: u32::try_from(n).unwrap() * 1000,
                },
                len: 100,
                src: Some(if n == 3 { other } else { lh }),
                dst: Some(lh),
                sport: 40000,
                dport: 5222,
                flow: Some(if n == 3 { 1 } else { 0 }),
                dir: Some(Dir::ClientToServer),
                ..Packet::default()
            };
            if n != 2 {
                p.events.push(ev(
                    EventKind::Stanza,
                    "presence",
                    "jabber:client",
                    None,
                    "PRESENCE",
                ));
            }
            b.add(&p, n * 100, tcpflag::ACK | tcpflag::DATA);
            if n == 2 {
                idx.apply(b.take_batch());
            }
        }
        idx.apply(b.take_batch());
        assert_eq!(idx.len(), 4);
        assert_eq!(idx.info(0), "PRESENCE");
        assert_eq!(idx.info(1), "40000 → 5222 [ACK] data");
        assert_eq!(
            idx.row(0).unwrap().info,
            idx.row(3).unwrap().info,
            "deduplicated"
        );
        assert_eq!(idx.row(2).unwrap().src, 1);
        assert_eq!(idx.addr(1), Some(other));
        assert_eq!(idx.row(3).unwrap().ts, 3000);
        assert_eq!(idx.flow_chain(3), vec![(0, 100), (1, 200), (3, 400)]);
        assert_eq!(idx.flow_chain(2), vec![(2, 300)]);
        let f = idx.flow(0).unwrap();
        assert_eq!((f.packets, f.first_row, f.last_row), (3, 0, 3));
        assert_eq!(f.jids, vec!["bob@localhost".to_owned()]);
        assert!(f.has_jid("BOB@localhost"));
        assert!(!f.has_jid("bob@localhost/x"));
        assert_eq!(idx.flow_count(), 2);
    }

    #[test]
    fn flushed_events_attach_to_the_last_row() {
        let mut b = IndexBuilder::new();
        let mut idx = Index::default();
        let p = Packet {
            number: 1,
            flow: Some(0),
            src: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            dst: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            dir: Some(Dir::ServerToClient),
            ..Packet::default()
        };
        b.add(&p, 0, tcpflag::ACK);
        idx.apply(b.take_batch());
        assert!(!idx.row(0).unwrap().is_xmpp());
        b.add_flushed(
            vec![ev(
                EventKind::Stanza,
                "message",
                "jabber:client",
                Some("chat"),
                "MESSAGE",
            )],
            vec![Note::new(crate::model::NoteKind::IncompleteElement, "open")],
        );
        idx.apply(b.take_batch());
        let r = idx.row(0).unwrap();
        assert!(r.is_xmpp());
        assert_eq!(r.cat(), Cat::Message);
        assert_eq!(r.severity(), 2);
        assert!(
            idx.info(0).ends_with("[flushed] MESSAGE"),
            "{}",
            idx.info(0)
        );
    }
}

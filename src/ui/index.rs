//! The TUI's compact index: one fixed-size [`Row`] per packet, strings in an
//! append-only arena, addresses interned, one summary per TCP flow.
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

/// One packet in the index. Its frame number is its position + 1.
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
    /// The previous row of the same flow ([`NONE`]: first).
    pub prev_in_flow: u32,
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

// The index's budget per packet.
const _: () = assert!(std::mem::size_of::<Row>() <= 48);

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
        if let Some(id) = self.dedupe.get(s) {
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
            prev_in_flow: NONE,
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
            row.prev_in_flow = f.last_row;
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
    pub rows: Vec<Row>,
    strings: String,
    string_starts: Vec<u64>,
    addrs: Vec<IpAddr>,
    /// Widest address, in characters.
    addr_width: usize,
    flows: Vec<Option<FlowSummary>>,
    extras: BTreeMap<u32, (Vec<Event>, Vec<Note>)>,
    pub first_ts: Option<Timestamp>,
    /// Names learnt from the capture so far.
    pub names: crate::names::Names,
}

impl Index {
    /// Append a batch.
    pub fn apply(&mut self, b: Batch) {
        if self.first_ts.is_none() {
            self.first_ts = b.first_ts;
        }
        let mut at = self.strings.len();
        self.strings.push_str(&b.strings.text);
        for len in b.strings.lens {
            self.string_starts.push(at as u64);
            at += len as usize;
        }
        for a in &b.addrs {
            self.addr_width = self.addr_width.max(a.to_string().len());
        }
        self.addrs.extend(b.addrs);
        self.rows.extend(b.rows);
        for (i, r) in b.row_updates {
            if let Some(slot) = self.rows.get_mut(i as usize) {
                *slot = r;
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

    #[must_use]
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    #[must_use]
    pub fn row(&self, i: u32) -> Option<&Row> {
        self.rows.get(i as usize)
    }

    /// A string by id ("" for [`NONE`] or unknown).
    #[must_use]
    pub fn string(&self, id: u32) -> &str {
        let i = id as usize;
        let Some(&start) = self.string_starts.get(i) else {
            return "";
        };
        let end = self
            .string_starts
            .get(i + 1)
            .map_or(self.strings.len() as u64, |e| *e);
        self.strings
            .get(usize::try_from(start).unwrap_or(0)..usize::try_from(end).unwrap_or(0))
            .unwrap_or("")
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

    /// The Info column of a row.
    #[must_use]
    pub fn info(&self, i: u32) -> String {
        let Some(r) = self.row(i) else {
            return String::new();
        };
        let mut s = if r.info == NONE {
            self.synth_info(r)
        } else {
            self.string(r.info).to_owned()
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
    /// (row index, file offset).
    #[must_use]
    pub fn flow_chain(&self, row: u32) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        let mut at = row;
        while let Some(r) = self.row(at) {
            out.push((at, r.offset));
            if r.prev_in_flow == NONE || r.prev_in_flow >= at {
                break;
            }
            at = r.prev_in_flow;
        }
        out.reverse();
        out
    }

    /// Give back the slack of the growing vectors (at the end of loading).
    pub fn shrink(&mut self) {
        self.rows.shrink_to_fit();
        self.strings.shrink_to_fit();
        self.string_starts.shrink_to_fit();
        self.addrs.shrink_to_fit();
    }

    /// (rows, string bytes, string count, addresses) held, for the figures.
    #[must_use]
    pub fn parts(&self) -> (usize, usize, usize, usize) {
        (
            self.rows.capacity() * std::mem::size_of::<Row>(),
            self.strings.capacity(),
            self.string_starts.capacity() * 8,
            self.addrs.capacity() * std::mem::size_of::<IpAddr>(),
        )
    }

    /// Approximate heap bytes held by the index.
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.rows.capacity() * std::mem::size_of::<Row>()
            + self.strings.capacity()
            + self.string_starts.capacity() * 8
            + self.addrs.capacity() * std::mem::size_of::<IpAddr>()
            + self.flows.capacity() * std::mem::size_of::<Option<FlowSummary>>()
            + self
                .flows
                .iter()
                .flatten()
                .map(|f| f.jids.iter().map(String::capacity).sum::<usize>())
                .sum::<usize>()
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
        assert!(std::mem::size_of::<Row>() <= 48);
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

//! What the dissector produces: packets, XMPP events and expert notes.
//!
//! These are plain owned values, shared by the headless printers, the
//! statistics and (later) the TUI. Nothing here knows about capture files.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use crate::xmpp::element::Element;

/// Capture timestamp: seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

impl Timestamp {
    #[must_use]
    pub fn as_f64(self) -> f64 {
        // Precision loss past 2^53 ns is irrelevant for display.
        #[allow(clippy::cast_precision_loss)]
        let s = self.secs as f64;
        s + f64::from(self.nanos) / 1e9
    }

    /// Seconds from `earlier` to `self` (negative if `self` is earlier).
    #[must_use]
    pub fn since(self, earlier: Self) -> f64 {
        self.as_f64() - earlier.as_f64()
    }
}

/// Which way the bytes went, relative to the side that opened the connection
/// (for s2s: the initiating server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Dir {
    #[serde(rename = "c2s")]
    ClientToServer,
    #[serde(rename = "s2c")]
    ServerToClient,
}

impl Dir {
    #[must_use]
    pub fn index(self) -> usize {
        match self {
            Self::ClientToServer => 0,
            Self::ServerToClient => 1,
        }
    }
    #[must_use]
    pub fn other(self) -> Self {
        match self {
            Self::ClientToServer => Self::ServerToClient,
            Self::ServerToClient => Self::ClientToServer,
        }
    }
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientToServer => "c2s",
            Self::ServerToClient => "s2c",
        }
    }
}

/// How bad an expert note is (Wireshark's severities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Chat,
    Note,
    Warn,
    Error,
}

/// Kinds of expert note. Each named limit has its own kind so `--stats`
/// can say which limit was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    /// Frame could not be sliced down to TCP (truncated or invalid header).
    MalformedFrame,
    /// IP fragment, not reassembled.
    IpFragment,
    /// Bytes of a TCP stream were never captured.
    TcpGap,
    /// A segment carried bytes already seen.
    TcpRetransmission,
    /// A retransmission carried different bytes than the first copy.
    TcpOverlapConflict,
    /// A segment was captured before its predecessor.
    TcpOutOfOrder,
    /// Payload after the FIN.
    TcpDataAfterFin,
    /// TCP keep-alive probe (RFC 9293 §3.8.4).
    TcpKeepAlive,
    /// A segment whose sequence number is nowhere near the stream.
    TcpOutOfWindow,
    /// Snaplen cut the payload.
    TcpTruncated,
    /// Limit: out-of-order bytes held per direction.
    LimitTcpBuffer,
    /// Limit: holes per direction.
    LimitTcpHoles,
    /// Limit: concurrent flows; the oldest were evicted.
    LimitFlows,
    /// Limit: size of one XML element.
    LimitElementSize,
    /// Limit: element nesting depth.
    LimitElementDepth,
    /// Limit: TLS handshake message size.
    LimitTlsHandshake,
    /// Flow idle past the idle timeout; its state was dropped.
    FlowIdleTimeout,
    /// Bytes that are not well-formed XML.
    MalformedXml,
    /// Bytes skipped to find the next element.
    XmlResync,
    /// A port-based XMPP flow whose bytes are not XML.
    NotXmpp,
    /// Bytes that are not TLS on a TLS flow.
    NotTls,
    /// TLS handshake message malformed.
    MalformedTls,
    /// An element was still open at the end of the capture.
    IncompleteElement,
    /// Stream compressed (XEP-0138): the rest cannot be framed.
    Compressed,
    /// TLS without a STARTTLS seen (capture began mid-session).
    TlsWithoutStarttls,
    /// SASL authentication failed.
    SaslFailure,
    /// `<stream:error/>`.
    StreamError,
    /// `type='error'` stanza.
    StanzaError,
    /// SASL text that is not base64 (RFC 6120 §6.4.2).
    SaslUndecodable,
    /// `<proceed/>` with no `<starttls/>` before it (RFC 6120 §5.4.2.3).
    ProceedWithoutStarttls,
    /// A second `<starttls/>` on the same flow (RFC 6120 §5.4.3.3).
    DuplicateStarttls,
    /// An `iq` get/set never answered (RFC 6120 §8.2.3).
    IqWithoutResponse,
    /// Limit: unanswered IQ requests remembered per flow.
    LimitPendingIqs,
    /// TLS not decrypted: the key log has no secret for this client random.
    TlsNoKey,
    /// TLS not decrypted: cipher suite or version not supported.
    TlsUnsupportedCipher,
    /// TLS not decrypted: the capture started after the handshake.
    TlsMidSession,
    /// TLS decryption failed: authentication tag (or MAC) did not verify.
    TlsDecryptFailed,
    /// TLS decryption stopped: TCP bytes lost inside the TLS stream.
    TlsDecryptLost,
}

impl NoteKind {
    #[must_use]
    pub fn severity(self) -> Severity {
        use NoteKind as K;
        match self {
            K::TcpKeepAlive => Severity::Chat,
            K::TcpRetransmission | K::TcpOutOfOrder => Severity::Note,
            K::IpFragment | K::Compressed | K::TlsWithoutStarttls | K::IqWithoutResponse => {
                Severity::Note
            }
            K::TlsNoKey | K::TlsMidSession => Severity::Note,
            K::TlsDecryptFailed => Severity::Error,
            K::MalformedFrame
            | K::TcpOverlapConflict
            | K::MalformedXml
            | K::NotTls
            | K::MalformedTls
            | K::StreamError => Severity::Error,
            _ => Severity::Warn,
        }
    }

    /// The stable name used in NDJSON and `--stats`.
    #[must_use]
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Is this kind a named limit being hit?
    #[must_use]
    pub fn is_limit(self) -> bool {
        matches!(
            self,
            Self::LimitTcpBuffer
                | Self::LimitTcpHoles
                | Self::LimitFlows
                | Self::LimitElementSize
                | Self::LimitElementDepth
                | Self::LimitTlsHandshake
                | Self::LimitPendingIqs
        )
    }
}

/// One expert note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub kind: NoteKind,
    pub severity: Severity,
    pub text: String,
    /// The flow whose number the text names ("flow 12 …"), if any: the
    /// parallel run renumbers it ([`Note::renumber`]).
    #[serde(skip)]
    pub flow: Option<u32>,
}

impl Note {
    #[must_use]
    pub fn new(kind: NoteKind, text: impl Into<String>) -> Self {
        Self {
            kind,
            severity: kind.severity(),
            text: text.into(),
            flow: None,
        }
    }

    /// A note whose text names `flow` as "flow N".
    #[must_use]
    pub fn on_flow(kind: NoteKind, flow: u32, text: impl Into<String>) -> Self {
        Self {
            flow: Some(flow),
            ..Self::new(kind, text)
        }
    }

    /// Give the flow the note names a new number, in the text too.
    pub fn renumber(&mut self, to: u32) {
        let Some(from) = self.flow else {
            return;
        };
        let old = format!("flow {from}");
        // The first "flow N" not followed by another digit.
        let at = self.text.match_indices(&old).map(|(i, _)| i).find(|&i| {
            !self
                .text
                .as_bytes()
                .get(i + old.len())
                .is_some_and(u8::is_ascii_digit)
        });
        if let Some(i) = at {
            self.text
                .replace_range(i..i + old.len(), &format!("flow {to}"));
        }
        self.flow = Some(to);
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.kind.name(), self.text)
    }
}

/// What kind of thing an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// `<?xml …?>`
    XmlDecl,
    /// `<stream:stream …>` open tag.
    StreamHeader,
    /// `</stream:stream>`.
    StreamEnd,
    /// Whitespace sent on its own (RFC 6120 §4.6.1).
    Keepalive,
    /// `<message/>`, `<presence/>`, `<iq/>`.
    Stanza,
    /// Any other top-level element (features, SASL, STARTTLS, SM, …).
    Nonza,
    /// Text, comments or PIs at top level (not allowed in XMPP).
    Junk,
    /// A TLS record on an XMPP flow.
    Tls,
}

/// XEP-0085 chat states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatState {
    Active,
    Composing,
    Paused,
    Inactive,
    Gone,
}

impl ChatState {
    #[must_use]
    pub fn from_local(name: &str) -> Option<Self> {
        Some(match name {
            "active" => Self::Active,
            "composing" => Self::Composing,
            "paused" => Self::Paused,
            "inactive" => Self::Inactive,
            "gone" => Self::Gone,
            _ => return None,
        })
    }
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Composing => "composing",
            Self::Paused => "paused",
            Self::Inactive => "inactive",
            Self::Gone => "gone",
        }
    }
}

/// The three stanzas (RFC 6120 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StanzaKind {
    Message,
    Presence,
    Iq,
}

/// Small facts about a stanza that `--stats` counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    /// Which stanza it is: `--stats` counts by it without reading `name`,
    /// which a counts-only dissector leaves empty
    /// ([`crate::dissect::Config::counts_only`]).
    pub stanza: Option<StanzaKind>,
    /// The `type` attribute when it is one the RFCs define, as a shared
    /// string: a counts-only dissector sets `Event::typ` only for the
    /// others, so that the usual stanza costs no allocation.
    pub typ: Option<&'static str>,
    /// Presence with a `<status/>`.
    pub has_status: bool,
    /// `<item/>`s in a roster result (`jabber:iq:roster`).
    pub roster_items: Option<u32>,
    /// XEP-0199 ping request.
    pub ping: bool,
    /// UTF-8 bytes of the message body after entity decoding.
    pub body_bytes: u64,
}

/// One XMPP (or TLS) event: a complete top-level unit of the stream.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Frame where the unit's last byte was delivered ("reassembled in").
    pub frame: u64,
    /// Every frame that carried bytes of it.
    pub frames: Vec<u64>,
    /// Capture time of `frame`.
    pub time: Timestamp,
    /// Flow index (like `tcp.stream`).
    pub flow: u32,
    pub dir: Dir,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub kind: EventKind,
    /// Qualified element name as written (`message`, `stream:features`).
    pub name: String,
    /// Resolved namespace.
    pub ns: std::sync::Arc<str>,
    #[serde(rename = "type")]
    pub typ: Option<String>,
    pub id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Wireshark-style summary.
    pub info: String,
    /// The unit's text (lossy UTF-8), secrets masked unless asked.
    pub xml: String,
    pub notes: Vec<Note>,
    /// XEP-0085 chat state child of a message.
    pub chat_state: Option<ChatState>,
    /// Message has a `<body/>`.
    pub has_body: bool,
    /// Facts counted by `--stats`.
    #[serde(skip)]
    pub facts: Facts,
    /// Stream offsets of the unit in its direction.
    pub offset: u64,
    pub len: u64,
    #[serde(skip)]
    pub element: Option<Box<Element>>,
    /// Structured fields (only when an output asks for them: NDJSON, `-V`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// Indented XML for `-V`, secrets masked (only with `-V`/NDJSON).
    #[serde(skip)]
    pub pretty: String,
    /// For an IQ result/error: the frame of its request (RFC 6120 §8.2.3).
    pub response_to: Option<u64>,
    /// For an IQ result/error: seconds since its request.
    pub response_time: Option<f64>,
    /// For an IQ get/set: the frame of its response, when known at the
    /// time the event is printed (same frame); otherwise see `response_to`
    /// on the response and the `iq_link` NDJSON record.
    pub response_in: Option<u64>,
    /// Read from decrypted TLS (with `--keylog`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub decrypted: bool,
}

impl Event {
    /// The kind's stable name.
    #[must_use]
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            EventKind::XmlDecl => "xml_decl",
            EventKind::StreamHeader => "stream_header",
            EventKind::StreamEnd => "stream_end",
            EventKind::Keepalive => "keepalive",
            EventKind::Stanza => "stanza",
            EventKind::Nonza => "nonza",
            EventKind::Junk => "junk",
            EventKind::Tls => "tls",
        }
    }
}

/// What the protocol column says about a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Proto {
    Other,
    Tcp,
    Xmpp,
    Tls,
}

impl Proto {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Other => "OTHER",
            Self::Tcp => "TCP",
            Self::Xmpp => "XMPP",
            Self::Tls => "TLS",
        }
    }
}

/// What `--stats` counts of a stanza, without the rest of an [`Event`]. A
/// counts-only dissector ([`crate::dissect::Config::counts_only`]: nothing
/// but the figures is printed) reports a stanza so when it has no notes:
/// a few fields instead of a whole event to build, move and drop.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub facts: Facts,
    pub chat_state: Option<ChatState>,
    pub has_body: bool,
    /// The `type` attribute when it is not one the facts name
    /// ([`Facts::typ`]).
    pub typ: Option<String>,
}

/// One captured frame after dissection.
#[derive(Debug, Clone, Default)]
pub struct Packet {
    /// 1-based record number in the file (Wireshark's `frame.number`).
    pub number: u64,
    pub ts: Timestamp,
    /// Frame length on the wire.
    pub len: u32,
    pub caplen: u32,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub sport: u16,
    pub dport: u16,
    pub flow: Option<u32>,
    /// Direction within the flow, when it has one.
    pub dir: Option<Dir>,
    /// Events completed in this frame.
    pub events: Vec<Event>,
    /// Stanzas completed in this frame, counted only (a counts-only
    /// dissector's, see [`Tally`]).
    pub tallies: Vec<Tally>,
    /// Notes about the frame itself (link/TCP level).
    pub notes: Vec<Note>,
}

impl Packet {
    /// The protocol column: XMPP if any XMPP event completed here, TLS if
    /// only TLS records did, TCP for a TCP segment, OTHER otherwise.
    #[must_use]
    pub fn proto(&self) -> Proto {
        if self.events.iter().any(|e| e.kind != EventKind::Tls) {
            Proto::Xmpp
        } else if !self.events.is_empty() {
            Proto::Tls
        } else if self.flow.is_some() {
            Proto::Tcp
        } else {
            Proto::Other
        }
    }

    /// Clear for reuse, keeping allocations.
    pub fn reset(&mut self) {
        self.number = 0;
        self.ts = Timestamp::default();
        self.len = 0;
        self.caplen = 0;
        self.src = None;
        self.dst = None;
        self.sport = 0;
        self.dport = 0;
        self.flow = None;
        self.dir = None;
        self.events.clear();
        self.tallies.clear();
        self.notes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renumber_changes_the_flow_named_in_the_text_only() {
        let mut n = Note::on_flow(
            NoteKind::IqWithoutResponse,
            34,
            "flow 342 is not it; flow 34 c2s: in frame 34 got no response",
        );
        n.renumber(7);
        assert_eq!(
            n.text,
            "flow 342 is not it; flow 7 c2s: in frame 34 got no response"
        );
        assert_eq!(n.flow, Some(7));
        // A note about no flow keeps its text.
        let mut plain = Note::new(NoteKind::IqWithoutResponse, "flow 34 c2s");
        plain.renumber(7);
        assert_eq!(plain.text, "flow 34 c2s");
        assert_eq!(plain.flow, None);
    }
}

//! Resumable TLS record recognizer for one direction of a TCP stream.
//!
//! XMPP switches to TLS after `<proceed/>` (RFC 6120 §5.4.3.3), and XEP-0368 clients speak TLS
//! from the first byte (port 5223 by convention). xmppscope does not decrypt, so this module shows
//! what a passive observer learns from the TLS layer: the record framing, the plaintext handshake
//! (ClientHello SNI/ALPN/versions/cipher suites, ServerHello version/cipher suite, the leaf
//! certificate's names for TLS ≤ 1.2), plaintext alerts, and the size of everything encrypted.
//!
//! # Use
//!
//! One [`TlsStream`] per TCP direction. Feed in-order bytes with [`TlsStream::push`] and holes
//! reported by TCP reassembly with [`TlsStream::gap`]; events come out through a callback:
//! [`TlsEvent::Record`] once a record's last byte has been seen, and [`TlsEvent::Note`] for
//! expert information. Bytes may be split anywhere: the same bytes give the same events whatever
//! the split.
//!
//! # Framing (RFC 8446 §5.1, RFC 5246 §6.2.1)
//!
//! Every record starts with a 5-byte header: content type, record-layer version, payload length.
//! A header with an unknown content type, a version other than `0x0300..=0x0304`, or a length
//! above 2^14 + 2048 (the TLSCiphertext bound of RFC 5246 §6.2.3, looser than RFC 8446 §5.2's
//! 2^14 + 256 so it admits both) is reported as [`TlsNoteKind::NotTls`] and the direction stops
//! being parsed ([`TlsStream::is_failed`]).
//!
//! # Memory
//!
//! The recognizer never buffers application data: payload it cannot read is counted and skipped.
//! It keeps at most a partial record header (or, while resynchronising, a 5-byte window), a
//! 6-byte probe, a partial 4-byte handshake header, and the body of one ClientHello, ServerHello
//! or Certificate message up to [`TlsLimits::max_handshake_bytes`]. So
//! [`TlsStream::buffered_bytes`] never exceeds `max_handshake_bytes + 16`. Larger messages are
//! named but not decoded ([`TlsNoteKind::HandshakeTooLarge`]); other handshake messages are never
//! buffered, only their type and length are kept.
//!
//! # Handshake messages
//!
//! Handshake messages form their own byte stream over the payload of consecutive handshake
//! records: one message may span several records and several may share one record (RFC 8446
//! §5.1, RFC 5246 §6.2.1). A message is reported in the record where its last byte arrives.
//!
//! # When the handshake becomes encrypted
//!
//! * TLS ≤ 1.2: after this direction's ChangeCipherSpec record (RFC 5246 §7.1), handshake records
//!   carry the encrypted Finished: they are named "Encrypted Handshake Message", alerts
//!   "Encrypted Alert".
//! * TLS 1.3: the server's ServerHello selects 1.3 in `supported_versions` (RFC 8446 §4.2.1); in
//!   that direction everything after the record holding the ServerHello is encrypted, and this
//!   module switches by itself (except after a HelloRetryRequest, RFC 8446 §4.1.4). The client
//!   direction cannot know which version was chosen, so the caller, who sees both directions,
//!   calls [`TlsStream::set_encrypted`] on the client stream. Encrypted TLS 1.3 records all have
//!   type 23 and are shown as "Application Data" anyway.
//! * Middlebox compatibility mode (RFC 8446 Appendix D.4) sends a dummy ChangeCipherSpec that
//!   can come *before* a plaintext second ClientHello (after a HelloRetryRequest), and the server
//!   sends one after its HelloRetryRequest and before its plaintext ServerHello. So when this
//!   direction offered TLS 1.3 or sent a HelloRetryRequest, a handshake record after
//!   ChangeCipherSpec is probed: if its first 6 bytes read as a Client/ServerHello header
//!   (length below 64 KiB) with `legacy_version` 0x0303 (RFC 8446 §4.1.2/§4.1.3) it is decoded,
//!   otherwise it is encrypted. For ciphertext (a TLS 1.2 Finished) the chance of a false match
//!   is 2^-31; a false match only yields a MalformedHandshake note.
//! * Pending handshake bytes at a key change are reported as [`TlsNoteKind::MalformedHandshake`]
//!   (RFC 8446 §5.1: handshake messages must not span key changes) and dropped.
//!
//! # Gaps
//!
//! If the missing bytes lie inside the payload of the current record, the next record boundary
//! is still known and framing simply continues (a long gap inside application data costs
//! nothing). A gap inside a plaintext handshake record loses the handshake-message boundary:
//! handshake decoding stops for the direction (records read "Handshake (not decoded)"). The
//! caller reports gaps itself, so no note is emitted for them; a record whose end falls inside
//! the gap is still reported, from within [`TlsStream::gap`].
//!
//! Otherwise the record boundary is lost. The choice made here is to **resynchronise, but only
//! on confirmed evidence**: a candidate header (type 20..=24, version `0x0300..=0x0304`, length
//! ≤ 2^14 + 2048) is accepted only when another plausible header starts exactly where the
//! candidate record ends. A lone false match in ciphertext has probability about 2^-21 per byte
//! position; needing two chained matches makes a false resync negligible, and the scan is done
//! with a 5-byte window and at most 16 pending candidates, so nothing is buffered. A real TLS
//! stream has a header at least every 18 437 bytes, so two chained headers must appear within
//! about 37 KB; if none is confirmed within [`RESYNC_SCAN_LIMIT`] bytes the direction is given
//! up with a [`TlsNoteKind::NotTls`] note. When confirmed, framing resumes with the earlier
//! record of the pair (reported without payload) and [`TlsStream::is_resyncing`] turns false.
//! After a resync, handshake messages are no longer decoded (their boundaries may have been in
//! the gap).
//!
//! # Certificates
//!
//! For a plaintext Certificate message (TLS ≤ 1.2, RFC 5246 §7.4.2) the leaf certificate is read
//! by a small bounded DER walker (X.690 §8.1, RFC 5280 §4.1): the subject's commonName
//! attributes and the subjectAltName dNSName entries (RFC 5280 §4.2.1.6), duplicates removed, at
//! most 64 names of at most 255 characters each, control and bidi characters escaped.
//!
//! No function here panics on input, allocates more than the limits above, or uses `unsafe`.

#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::mem;

/// Size of a TLS record header: type (1), version (2), length (2). RFC 8446 §5.1.
pub const RECORD_HEADER_LEN: usize = 5;
/// Largest record payload accepted: 2^14 + 2048 (RFC 5246 §6.2.3 TLSCiphertext).
pub const MAX_RECORD_LEN: usize = (1 << 14) + 2048;
/// After a gap loses the record boundary, give up if no confirmed header pair is found within
/// this many bytes. Two full records plus a header (≈ 37 KB) always contain one.
pub const RESYNC_SCAN_LIMIT: usize = 64 * 1024;
/// Default for [`TlsLimits::max_handshake_bytes`].
pub const DEFAULT_MAX_HANDSHAKE_BYTES: usize = 64 * 1024;

/// Content type 20 (RFC 5246 §6.2.1, RFC 8446 §5.1).
pub const CT_CHANGE_CIPHER_SPEC: u8 = 20;
/// Content type 21.
pub const CT_ALERT: u8 = 21;
/// Content type 22.
pub const CT_HANDSHAKE: u8 = 22;
/// Content type 23.
pub const CT_APPLICATION_DATA: u8 = 23;
/// Content type 24 (RFC 6520).
pub const CT_HEARTBEAT: u8 = 24;

/// Handshake type 1 (RFC 8446 §4).
pub const HS_CLIENT_HELLO: u8 = 1;
/// Handshake type 2.
pub const HS_SERVER_HELLO: u8 = 2;
/// Handshake type 11.
pub const HS_CERTIFICATE: u8 = 11;

/// The TLS 1.3 version number (RFC 8446 §4.2.1).
pub const TLS13: u16 = 0x0304;

const HEADER_LEN_U64: u64 = RECORD_HEADER_LEN as u64;
const HANDSHAKE_HEADER_LEN: usize = 4;
/// Bytes of a handshake record read before deciding whether it is a plaintext hello after a
/// compatibility ChangeCipherSpec: msg_type, 3-byte length, legacy_version.
const PROBE_LEN: usize = 6;
const MAX_RESYNC_CANDIDATES: usize = 16;
const MAX_SUBJECTS: usize = 64;
const MAX_TEXT_CHARS: usize = 255;

/// RFC 6066 §3 `server_name`.
const EXT_SERVER_NAME: u16 = 0;
/// RFC 7301 §3.1 `application_layer_protocol_negotiation`.
const EXT_ALPN: u16 = 16;
/// RFC 8446 §4.2.1 `supported_versions`.
const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// ServerHello.random of a HelloRetryRequest: SHA-256("HelloRetryRequest"), RFC 8446 §4.1.3.
const HELLO_RETRY_REQUEST_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

/// Limits for one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsLimits {
    /// Largest handshake message reassembled across records to decode (ClientHello,
    /// ServerHello, Certificate). Default 64 KiB. Larger: note, the message is named but not
    /// decoded.
    pub max_handshake_bytes: usize,
}

impl Default for TlsLimits {
    fn default() -> Self {
        Self {
            max_handshake_bytes: DEFAULT_MAX_HANDSHAKE_BYTES,
        }
    }
}

/// One TLS record, reported once its last byte has been seen (or skipped over by a gap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsRecord {
    /// 20 ChangeCipherSpec, 21 Alert, 22 Handshake, 23 ApplicationData, 24 Heartbeat.
    pub content_type: u8,
    /// Record-layer version (0x0301..0x0304; 0x0300 for SSL 3.0).
    pub version: u16,
    /// Record payload length.
    pub length: u16,
    /// Stream offset of the first header byte.
    pub start: u64,
    /// Stream offset just past the payload (`start + 5 + length`).
    pub end: u64,
    /// Handshake messages that COMPLETED in this record (may be empty; a message can span
    /// records).
    pub handshakes: Vec<Handshake>,
    /// Level and description of a plaintext alert.
    pub alert: Option<(u8, u8)>,
    /// The payload is protected as far as this direction knows: always for ApplicationData,
    /// never for ChangeCipherSpec, otherwise after this direction's ChangeCipherSpec, after
    /// [`TlsStream::set_encrypted`], or after a TLS 1.3 ServerHello in this direction.
    pub encrypted: bool,
    /// Type of a plaintext handshake message that had bytes in this record but did not complete
    /// in it (it continues in the next handshake record).
    pub incomplete_handshake: Option<u8>,
}

/// One handshake message (RFC 8446 §4, RFC 5246 §7.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// 1 ClientHello, 2 ServerHello, 4 NewSessionTicket, 8 EncryptedExtensions, 11 Certificate,
    /// 12 ServerKeyExchange, 13 CertificateRequest, 14 ServerHelloDone, 15 CertificateVerify,
    /// 16 ClientKeyExchange, 20 Finished.
    pub msg_type: u8,
    /// Body length from the handshake header.
    pub length: u32,
    /// Decoded ClientHello.
    pub client_hello: Option<ClientHello>,
    /// Decoded ServerHello (or HelloRetryRequest).
    pub server_hello: Option<ServerHello>,
    /// For a Certificate message (TLS ≤ 1.2 plaintext): the leaf's subject CN and its
    /// subjectAltName dNSNames; empty when not decodable.
    pub certificate_subjects: Vec<String>,
}

/// What an observer reads in a ClientHello (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    pub legacy_version: u16,
    pub random: [u8; 32],
    /// First `host_name` of the server_name extension (RFC 6066 §3).
    pub sni: Option<String>,
    /// ALPN protocol names (RFC 7301 §3.1), e.g. `xmpp-client` (XEP-0368).
    pub alpn: Vec<String>,
    /// `supported_versions` (RFC 8446 §4.2.1), in the client's order.
    pub supported_versions: Vec<u16>,
    /// Offered cipher suites, in the client's order (GREASE values included).
    pub cipher_suites: Vec<u16>,
}

/// What an observer reads in a ServerHello (RFC 8446 §4.1.3, RFC 5246 §7.4.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHello {
    pub legacy_version: u16,
    pub random: [u8; 32],
    pub cipher_suite: u16,
    /// `supported_versions` extension (TLS 1.3).
    pub selected_version: Option<u16>,
}

impl ServerHello {
    /// A HelloRetryRequest is a ServerHello with a fixed random (RFC 8446 §4.1.3).
    #[must_use]
    pub fn is_hello_retry_request(&self) -> bool {
        self.random == HELLO_RETRY_REQUEST_RANDOM
    }

    /// The version actually negotiated: `supported_versions` if present, else `legacy_version`.
    #[must_use]
    pub fn negotiated_version(&self) -> u16 {
        self.selected_version.unwrap_or(self.legacy_version)
    }
}

/// Expert-information categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsNoteKind {
    /// Bytes that are not a TLS record header (invalid content type, version or length), or no
    /// record boundary found after a gap: the stream stops being parsed as TLS.
    NotTls,
    /// A ClientHello/ServerHello/Certificate larger than [`TlsLimits::max_handshake_bytes`]: it
    /// is named but not decoded.
    HandshakeTooLarge,
    /// A handshake message whose fields do not fit its length, or that is cut by a key change.
    MalformedHandshake,
}

/// Output of [`TlsStream::push`] and [`TlsStream::gap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsEvent {
    Record(TlsRecord),
    Note {
        kind: TlsNoteKind,
        offset: u64,
        detail: String,
    },
}

/// How far this direction's record protection has gone. Ordered: it only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Protection {
    Plaintext,
    /// After ChangeCipherSpec: encrypted, except a probed plaintext hello (RFC 8446 D.4).
    AfterChangeCipherSpec,
    /// Known encrypted: no probing.
    Encrypted,
}

#[derive(Debug)]
enum BodyMode {
    /// Count and skip (application data, encrypted payload, CCS, heartbeat, lost handshake).
    Skip,
    /// Feed to the handshake assembler.
    Handshake,
    /// Keep the first alert's two bytes.
    Alert { buf: [u8; 2], len: usize },
    /// Handshake record after a compatibility CCS: read 6 bytes before deciding.
    Probe { buf: [u8; PROBE_LEN], len: usize },
}

#[derive(Debug)]
struct Body {
    record: TlsRecord,
    remaining: usize,
    mode: BodyMode,
}

/// A plausible record header seen while resynchronising, waiting for the header that its
/// length predicts.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    start: u64,
    header: [u8; RECORD_HEADER_LEN],
    /// Where the next header must start if this one is real.
    next: u64,
}

/// A record boundary confirmed by two chained headers.
#[derive(Debug, Clone, Copy)]
struct Confirmed {
    /// The earlier record, whose length pointed at `start`.
    previous: Candidate,
    header: [u8; RECORD_HEADER_LEN],
    start: u64,
}

/// Looking for a confirmed record header after a gap.
#[derive(Debug, Default)]
struct Resync {
    window: [u8; RECORD_HEADER_LEN],
    window_len: usize,
    candidates: Vec<Candidate>,
    scanned: usize,
}

impl Resync {
    /// Slides `byte` (whose stream offset is `at`) into the window; reports a header that an
    /// earlier candidate's length points at.
    fn slide(&mut self, byte: u8, at: u64) -> Option<Confirmed> {
        if let Some(slot) = self.window.get_mut(self.window_len) {
            *slot = byte;
            self.window_len = self.window_len.saturating_add(1);
        } else {
            self.window.rotate_left(1);
            if let Some(last) = self.window.last_mut() {
                *last = byte;
            }
        }
        self.scanned = self.scanned.saturating_add(1);
        if self.window_len < RECORD_HEADER_LEN {
            return None;
        }
        // `at` is the window's last byte, so the window starts 4 bytes earlier.
        let start = at.saturating_sub(HEADER_LEN_U64.saturating_sub(1));
        self.candidates.retain(|c| c.next >= start);
        let (_, _, length) = parse_record_header(self.window).ok()?;
        if let Some(&previous) = self.candidates.iter().find(|c| c.next == start) {
            return Some(Confirmed {
                previous,
                header: self.window,
                start,
            });
        }
        if self.candidates.len() < MAX_RESYNC_CANDIDATES {
            self.candidates.push(Candidate {
                start,
                header: self.window,
                next: record_end(start, length),
            });
        }
        None
    }

    /// A further gap: the window must be contiguous, and the scan budget starts again.
    /// Candidates stay: their predicted offsets are absolute.
    fn restart(&mut self) {
        self.window_len = 0;
        self.scanned = 0;
    }
}

#[derive(Debug)]
enum State {
    Header {
        buf: [u8; RECORD_HEADER_LEN],
        len: usize,
    },
    Body(Body),
    Resync(Resync),
    Failed,
}

impl State {
    fn header() -> Self {
        State::Header {
            buf: [0; RECORD_HEADER_LEN],
            len: 0,
        }
    }
}

/// The record recognizer for one direction of a TCP stream.
#[derive(Debug)]
pub struct TlsStream {
    limits: TlsLimits,
    /// Stream offset of the next byte.
    offset: u64,
    state: State,
    hs: HandshakeAssembler,
    protection: Protection,
    /// Set by [`TlsStream::set_encrypted`]; applied when the next record header is read.
    pending_encrypted: bool,
}

impl TlsStream {
    /// A recognizer whose first byte is stream offset 0.
    #[must_use]
    pub fn new(limits: TlsLimits) -> Self {
        Self::with_offset(limits, 0)
    }

    /// A recognizer whose first byte has stream offset `offset` (e.g. the TCP-direction offset
    /// just after `<proceed/>`), so record offsets match the caller's.
    #[must_use]
    pub fn with_offset(limits: TlsLimits, offset: u64) -> Self {
        Self {
            limits,
            offset,
            state: State::header(),
            hs: HandshakeAssembler::default(),
            protection: Protection::Plaintext,
            pending_encrypted: false,
        }
    }

    /// Stream offset of the next byte expected.
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Declares this direction encrypted from the next record header on (the caller saw a
    /// ServerHello selecting TLS 1.3 in the other direction). Handshake records are then named
    /// "Encrypted Handshake Message" and never decoded; a handshake message still incomplete at
    /// that point is reported as malformed (RFC 8446 §5.1).
    pub fn set_encrypted(&mut self) {
        self.pending_encrypted = true;
    }

    /// Whether later records of this direction are (or will be, after [`Self::set_encrypted`])
    /// treated as encrypted.
    #[must_use]
    pub fn is_encrypted(&self) -> bool {
        self.pending_encrypted || self.protection != Protection::Plaintext
    }

    /// Bytes currently held: partial headers, probes, and a handshake body being reassembled.
    /// At most `max_handshake_bytes + 16`.
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        let own = match &self.state {
            State::Header { len, .. } => *len,
            State::Body(body) => match &body.mode {
                BodyMode::Alert { len, .. } | BodyMode::Probe { len, .. } => *len,
                BodyMode::Skip | BodyMode::Handshake => 0,
            },
            State::Resync(rs) => rs.window_len,
            State::Failed => 0,
        };
        own.saturating_add(self.hs.buffered())
    }

    /// The direction stopped being parsed as TLS (see [`TlsNoteKind::NotTls`]).
    #[must_use]
    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed)
    }

    /// A gap lost the record boundary and no confirmed header has been found yet: bytes pushed
    /// now are scanned, not framed.
    #[must_use]
    pub fn is_resyncing(&self) -> bool {
        matches!(self.state, State::Resync(_))
    }

    /// Feeds the next in-order bytes of the direction.
    pub fn push(&mut self, data: &[u8], sink: &mut dyn FnMut(TlsEvent)) {
        let mut input = data;
        while !input.is_empty() {
            let used = match self.state {
                State::Header { .. } => self.step_header(input, sink),
                State::Body(_) => self.step_body(input, sink),
                State::Resync(_) => self.step_resync(input, sink),
                State::Failed => {
                    self.advance(input.len());
                    input.len()
                }
            };
            if used == 0 {
                // Every state consumes at least one byte; this only guards against a bug
                // turning into an endless loop.
                self.advance(input.len());
                break;
            }
            input = input.get(used..).unwrap_or_default();
        }
    }

    /// `len` bytes are missing at the current offset (see the module documentation, "Gaps").
    pub fn gap(&mut self, len: u64, sink: &mut dyn FnMut(TlsEvent)) {
        if len == 0 {
            return;
        }
        self.offset = self.offset.saturating_add(len);
        let mut lost_handshake = false;
        let mut record_done = false;
        let mut boundary_lost = true;
        match &mut self.state {
            State::Failed => return,
            State::Body(body) => {
                let remaining = body.remaining as u64;
                lost_handshake = matches!(body.mode, BodyMode::Handshake);
                // Payload we cannot see is not decoded; the alert or probe is unknown.
                body.mode = BodyMode::Skip;
                if len <= remaining {
                    // The gap ends inside (or exactly at the end of) this record: the next
                    // header position is still known.
                    boundary_lost = false;
                    body.remaining = usize::try_from(remaining.saturating_sub(len)).unwrap_or(0);
                } else {
                    // The record ends inside the gap; report what was seen of it.
                    body.remaining = 0;
                }
                record_done = body.remaining == 0;
            }
            State::Header { .. } | State::Resync(_) => {}
        }
        if lost_handshake {
            // The caller reports the gap itself; records say "Handshake (not decoded)".
            self.hs.lose();
        }
        if record_done {
            self.finish_record(sink);
        }
        if boundary_lost {
            self.lose_sync();
        }
    }

    fn advance(&mut self, n: usize) {
        self.offset = self.offset.saturating_add(n as u64);
    }

    /// The record boundary is lost: scan for two chained headers. No note: the caller reports
    /// the gap, and [`Self::is_resyncing`] tells whether framing has resumed.
    fn lose_sync(&mut self) {
        self.hs.lose();
        if let State::Resync(rs) = &mut self.state {
            rs.restart();
        } else {
            self.state = State::Resync(Resync::default());
        }
    }

    fn fail(&mut self, offset: u64, detail: String, sink: &mut dyn FnMut(TlsEvent)) {
        note(sink, TlsNoteKind::NotTls, offset, detail);
        self.state = State::Failed;
        self.hs.reset();
    }

    fn step_header(&mut self, input: &[u8], sink: &mut dyn FnMut(TlsEvent)) -> usize {
        let State::Header { buf, len } = &mut self.state else {
            return 0;
        };
        let used = copy_into(buf, *len, input);
        *len = len.saturating_add(used);
        let complete = (*len >= RECORD_HEADER_LEN).then_some(*buf);
        self.advance(used);
        if let Some(header) = complete {
            let start = self.offset.saturating_sub(HEADER_LEN_U64);
            self.begin_record(header, start, sink);
        }
        used
    }

    fn begin_record(
        &mut self,
        header: [u8; RECORD_HEADER_LEN],
        start: u64,
        sink: &mut dyn FnMut(TlsEvent),
    ) {
        let (content_type, version, length) = match parse_record_header(header) {
            Ok(fields) => fields,
            Err(detail) => {
                self.fail(start, detail, sink);
                return;
            }
        };
        if mem::take(&mut self.pending_encrypted) {
            self.change_keys(Protection::Encrypted, start, sink);
        }
        let protection = self.protection;
        let mode = match content_type {
            CT_HANDSHAKE if self.hs.lost => BodyMode::Skip,
            CT_HANDSHAKE if protection == Protection::Plaintext => BodyMode::Handshake,
            // RFC 8446 D.4: a compatibility CCS may precede a plaintext second hello.
            CT_HANDSHAKE
                if protection == Protection::AfterChangeCipherSpec && self.hs.tls13_hint =>
            {
                BodyMode::Probe {
                    buf: [0; PROBE_LEN],
                    len: 0,
                }
            }
            CT_ALERT if protection == Protection::Plaintext => BodyMode::Alert {
                buf: [0; 2],
                len: 0,
            },
            _ => BodyMode::Skip,
        };
        let encrypted = match content_type {
            CT_CHANGE_CIPHER_SPEC => false,
            CT_APPLICATION_DATA => true,
            _ => protection != Protection::Plaintext,
        };
        let remaining = usize::from(length);
        let record = TlsRecord {
            content_type,
            version,
            length,
            start,
            end: record_end(start, length),
            handshakes: Vec::new(),
            alert: None,
            encrypted,
            incomplete_handshake: None,
        };
        self.state = State::Body(Body {
            record,
            remaining,
            mode,
        });
        if remaining == 0 {
            self.finish_record(sink);
        }
    }

    fn step_body(&mut self, input: &[u8], sink: &mut dyn FnMut(TlsEvent)) -> usize {
        let limits = self.limits;
        let chunk_start = self.offset;
        let State::Body(body) = &mut self.state else {
            return 0;
        };
        let take = body.remaining.min(input.len());
        let chunk = input.get(..take).unwrap_or_default();
        let mut probed = None;
        match &mut body.mode {
            BodyMode::Skip => {}
            BodyMode::Handshake => {
                self.hs.feed(
                    chunk,
                    chunk_start,
                    limits,
                    &mut body.record.handshakes,
                    sink,
                );
            }
            BodyMode::Alert { buf, len } => {
                *len = len.saturating_add(copy_into(buf, *len, chunk));
            }
            BodyMode::Probe { buf, len } => {
                let used = copy_into(buf, *len, chunk);
                *len = len.saturating_add(used);
                if *len >= PROBE_LEN {
                    probed = Some((*buf, used));
                }
            }
        }
        if let Some((probe, used)) = probed {
            if looks_like_plaintext_hello(probe) {
                body.mode = BodyMode::Handshake;
                body.record.encrypted = false;
                let payload_start = body.record.start.saturating_add(HEADER_LEN_U64);
                let out = &mut body.record.handshakes;
                self.hs.feed(&probe, payload_start, limits, out, sink);
                let rest = chunk.get(used..).unwrap_or_default();
                let rest_start = chunk_start.saturating_add(used as u64);
                self.hs.feed(rest, rest_start, limits, out, sink);
            } else {
                body.mode = BodyMode::Skip;
            }
        }
        body.remaining = body.remaining.saturating_sub(take);
        let done = body.remaining == 0;
        self.advance(take);
        if done {
            self.finish_record(sink);
        }
        take
    }

    fn step_resync(&mut self, input: &[u8], sink: &mut dyn FnMut(TlsEvent)) -> usize {
        for (used, &byte) in (1..).zip(input) {
            let at = self.offset;
            self.advance(1);
            let State::Resync(rs) = &mut self.state else {
                return used;
            };
            if let Some(found) = rs.slide(byte, at) {
                self.resynced(found, sink);
                return used;
            }
            if rs.scanned >= RESYNC_SCAN_LIMIT {
                let offset = self.offset;
                self.fail(
                    offset,
                    format!(
                        "no chained TLS record headers within {RESYNC_SCAN_LIMIT} bytes \
                         after a gap; no longer parsed as TLS"
                    ),
                    sink,
                );
                return used;
            }
        }
        input.len()
    }

    /// Resumes framing at a confirmed header. The candidate record that pointed at it is
    /// reported too (its payload was scanned, not decoded); a ChangeCipherSpec among them still
    /// counts as a key change.
    fn resynced(&mut self, found: Confirmed, sink: &mut dyn FnMut(TlsEvent)) {
        let previous = found.previous;
        self.begin_record(previous.header, previous.start, sink);
        if let State::Body(body) = &mut self.state {
            body.mode = BodyMode::Skip;
            body.remaining = 0;
        }
        self.finish_record(sink);
        self.begin_record(found.header, found.start, sink);
    }

    fn finish_record(&mut self, sink: &mut dyn FnMut(TlsEvent)) {
        if !matches!(self.state, State::Body(_)) {
            return;
        }
        let State::Body(body) = mem::replace(&mut self.state, State::header()) else {
            return;
        };
        let Body {
            mut record, mode, ..
        } = body;
        match mode {
            BodyMode::Alert {
                buf: [level, description],
                len,
            } if len >= 2 => {
                record.alert = Some((level, description));
            }
            BodyMode::Handshake => record.incomplete_handshake = self.hs.pending_type(),
            _ => {}
        }
        let content_type = record.content_type;
        let end = record.end;
        sink(TlsEvent::Record(record));
        if content_type == CT_CHANGE_CIPHER_SPEC {
            // RFC 5246 §7.1: records after this direction's ChangeCipherSpec are protected.
            self.change_keys(Protection::AfterChangeCipherSpec, end, sink);
        }
        if mem::take(&mut self.hs.tls13_selected) {
            // RFC 8446 §2: everything after the ServerHello is encrypted.
            self.change_keys(Protection::Encrypted, end, sink);
        }
    }

    fn change_keys(&mut self, to: Protection, at: u64, sink: &mut dyn FnMut(TlsEvent)) {
        if to <= self.protection {
            return;
        }
        if self.hs.has_partial() {
            note(
                sink,
                TlsNoteKind::MalformedHandshake,
                at,
                format!(
                    "{} incomplete at a key change (RFC 8446 §5.1: handshake messages \
                     must not span key changes); dropped",
                    self.hs
                        .pending_type()
                        .map_or("Handshake message", handshake_name)
                ),
            );
        }
        self.hs.reset();
        self.protection = to;
    }
}

fn note(sink: &mut dyn FnMut(TlsEvent), kind: TlsNoteKind, offset: u64, detail: String) {
    sink(TlsEvent::Note {
        kind,
        offset,
        detail,
    });
}

/// Stream offset just past a record that starts at `start`.
fn record_end(start: u64, length: u16) -> u64 {
    start
        .saturating_add(HEADER_LEN_U64)
        .saturating_add(u64::from(length))
}

/// Copies as much of `src` as fits into `dst[at..]`; returns the number of bytes copied.
fn copy_into(dst: &mut [u8], at: usize, src: &[u8]) -> usize {
    dst.iter_mut()
        .skip(at)
        .zip(src)
        .map(|(d, s)| *d = *s)
        .count()
}

/// Checks a record header (RFC 8446 §5.1): content type, version and length.
fn parse_record_header(h: [u8; RECORD_HEADER_LEN]) -> Result<(u8, u16, u16), String> {
    let [content_type, major, minor, len_hi, len_lo] = h;
    if !(CT_CHANGE_CIPHER_SPEC..=CT_HEARTBEAT).contains(&content_type) {
        return Err(format!(
            "not a TLS record: content type {content_type} (0x{content_type:02X}) is not 20..=24"
        ));
    }
    let version = u16::from_be_bytes([major, minor]);
    if major != 3 || minor > 4 {
        return Err(format!(
            "not a TLS record: version 0x{version:04X} is not 0x0300..=0x0304"
        ));
    }
    let length = u16::from_be_bytes([len_hi, len_lo]);
    if usize::from(length) > MAX_RECORD_LEN {
        return Err(format!(
            "not a TLS record: length {length} exceeds 2^14+2048 (RFC 5246 §6.2.3)"
        ));
    }
    Ok((content_type, version, length))
}

/// A TLS 1.3 Client/ServerHello header: type 1 or 2, length below 64 KiB, `legacy_version`
/// 0x0303 (RFC 8446 §4.1.2, §4.1.3).
fn looks_like_plaintext_hello(p: [u8; PROBE_LEN]) -> bool {
    matches!(p, [HS_CLIENT_HELLO | HS_SERVER_HELLO, 0, _, _, 3, 3])
}

/// Is this the start of a TLS record? (for classifying a flow by its first bytes) `b[0]` in
/// 20..=24, `b[1] == 3`, `b[2] <= 4`.
#[must_use]
pub fn looks_like_tls(b: &[u8]) -> bool {
    matches!(b, [t, 3, minor, ..] if (CT_CHANGE_CIPHER_SPEC..=CT_HEARTBEAT).contains(t) && *minor <= 4)
}

// ---------------------------------------------------------------------------------------------
// Handshake message reassembly (RFC 8446 §4: msg_type u8, length u24, body).

#[derive(Debug)]
struct PendingMessage {
    msg_type: u8,
    length: u32,
    start: u64,
    remaining: usize,
    /// The body, kept only for messages decoded here and within the limit.
    body: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
struct HandshakeAssembler {
    header: [u8; HANDSHAKE_HEADER_LEN],
    header_len: usize,
    header_start: u64,
    message: Option<PendingMessage>,
    /// Message boundaries were lost in a gap: nothing more is decoded.
    lost: bool,
    /// This direction offered TLS 1.3 in a ClientHello or sent a HelloRetryRequest, so a
    /// plaintext hello may follow a compatibility ChangeCipherSpec (RFC 8446 D.4).
    tls13_hint: bool,
    /// A ServerHello selecting TLS 1.3 completed; the stream switches to encrypted at the end
    /// of the record.
    tls13_selected: bool,
}

impl HandshakeAssembler {
    fn has_partial(&self) -> bool {
        self.header_len > 0 || self.message.is_some()
    }

    fn pending_type(&self) -> Option<u8> {
        match &self.message {
            Some(m) => Some(m.msg_type),
            None if self.header_len > 0 => Some(self.header[0]),
            None => None,
        }
    }

    fn buffered(&self) -> usize {
        let body = self
            .message
            .as_ref()
            .and_then(|m| m.body.as_ref())
            .map_or(0, Vec::len);
        self.header_len.saturating_add(body)
    }

    fn reset(&mut self) {
        self.header_len = 0;
        self.message = None;
    }

    fn lose(&mut self) {
        self.reset();
        self.lost = true;
    }

    /// Feeds handshake-record payload whose first byte is at stream offset `offset`.
    fn feed(
        &mut self,
        data: &[u8],
        offset: u64,
        limits: TlsLimits,
        out: &mut Vec<Handshake>,
        sink: &mut dyn FnMut(TlsEvent),
    ) {
        let mut data = data;
        let mut offset = offset;
        while !data.is_empty() {
            let used = if let Some(msg) = &mut self.message {
                let take = msg.remaining.min(data.len());
                if let Some(body) = &mut msg.body {
                    body.extend_from_slice(data.get(..take).unwrap_or_default());
                }
                msg.remaining = msg.remaining.saturating_sub(take);
                take
            } else {
                if self.header_len == 0 {
                    self.header_start = offset;
                }
                let n = copy_into(&mut self.header, self.header_len, data);
                self.header_len = self.header_len.saturating_add(n);
                n
            };
            data = data.get(used..).unwrap_or_default();
            offset = offset.saturating_add(used as u64);
            if self.header_len >= HANDSHAKE_HEADER_LEN {
                self.start_message(limits, sink);
            }
            if self.message.as_ref().is_some_and(|m| m.remaining == 0)
                && let Some(msg) = self.message.take()
            {
                self.complete(&msg, out, sink);
            }
            if used == 0 {
                break;
            }
        }
    }

    fn start_message(&mut self, limits: TlsLimits, sink: &mut dyn FnMut(TlsEvent)) {
        let [msg_type, a, b, c] = self.header;
        self.header_len = 0;
        let length = u32::from_be_bytes([0, a, b, c]);
        let len = usize::try_from(length).unwrap_or(usize::MAX);
        let decoded = matches!(msg_type, HS_CLIENT_HELLO | HS_SERVER_HELLO | HS_CERTIFICATE);
        let body = if !decoded {
            None
        } else if len <= limits.max_handshake_bytes {
            Some(Vec::with_capacity(len))
        } else {
            note(
                sink,
                TlsNoteKind::HandshakeTooLarge,
                self.header_start,
                format!(
                    "{} of {length} bytes exceeds the {}-byte decode limit; \
                     named but not decoded",
                    handshake_name(msg_type),
                    limits.max_handshake_bytes
                ),
            );
            None
        };
        self.message = Some(PendingMessage {
            msg_type,
            length,
            start: self.header_start,
            remaining: len,
            body,
        });
    }

    fn complete(
        &mut self,
        msg: &PendingMessage,
        out: &mut Vec<Handshake>,
        sink: &mut dyn FnMut(TlsEvent),
    ) {
        let mut hs = Handshake {
            msg_type: msg.msg_type,
            length: msg.length,
            client_hello: None,
            server_hello: None,
            certificate_subjects: Vec::new(),
        };
        let result = match (&msg.body, msg.msg_type) {
            (Some(body), HS_CLIENT_HELLO) => decode_client_hello(body).map(|ch| {
                if ch.supported_versions.contains(&TLS13) {
                    self.tls13_hint = true;
                }
                hs.client_hello = Some(ch);
            }),
            (Some(body), HS_SERVER_HELLO) => decode_server_hello(body).map(|sh| {
                if sh.is_hello_retry_request() {
                    self.tls13_hint = true;
                } else if sh.selected_version == Some(TLS13) {
                    self.tls13_selected = true;
                }
                hs.server_hello = Some(sh);
            }),
            (Some(body), HS_CERTIFICATE) => leaf_certificate(body).map(|leaf| {
                hs.certificate_subjects = leaf.map(certificate_subjects).unwrap_or_default();
            }),
            _ => Ok(()),
        };
        if let Err(field) = result {
            note(
                sink,
                TlsNoteKind::MalformedHandshake,
                msg.start,
                format!(
                    "{} of {} bytes: field `{field}` is truncated or overruns its length",
                    handshake_name(msg.msg_type),
                    msg.length
                ),
            );
        }
        out.push(hs);
    }
}

// ---------------------------------------------------------------------------------------------
// Handshake body decoding. Errors name the field that did not fit.

type Field = &'static str;

/// A cursor over TLS presentation-language vectors (RFC 8446 §3.4).
#[derive(Debug, Clone, Copy)]
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Self { rest }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn take(&mut self, n: usize, field: Field) -> Result<&'a [u8], Field> {
        let (head, tail) = self.rest.split_at_checked(n).ok_or(field)?;
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: Field) -> Result<[u8; N], Field> {
        let (head, tail) = self.rest.split_first_chunk::<N>().ok_or(field)?;
        self.rest = tail;
        Ok(*head)
    }

    fn u8(&mut self, field: Field) -> Result<u8, Field> {
        self.array::<1>(field).map(|[b]| b)
    }

    fn u16(&mut self, field: Field) -> Result<u16, Field> {
        self.array::<2>(field).map(u16::from_be_bytes)
    }

    fn u24(&mut self, field: Field) -> Result<usize, Field> {
        let [a, b, c] = self.array::<3>(field)?;
        usize::try_from(u32::from_be_bytes([0, a, b, c])).map_err(|_| field)
    }

    fn vec8(&mut self, field: Field) -> Result<Reader<'a>, Field> {
        let n = self.u8(field)?;
        self.take(usize::from(n), field).map(Reader::new)
    }

    fn vec16(&mut self, field: Field) -> Result<Reader<'a>, Field> {
        let n = self.u16(field)?;
        self.take(usize::from(n), field).map(Reader::new)
    }

    fn vec24(&mut self, field: Field) -> Result<Reader<'a>, Field> {
        let n = self.u24(field)?;
        self.take(n, field).map(Reader::new)
    }
}

fn u16_list(bytes: &[u8], field: Field) -> Result<Vec<u16>, Field> {
    let (pairs, odd) = bytes.as_chunks::<2>();
    if !odd.is_empty() {
        return Err(field);
    }
    Ok(pairs.iter().map(|p| u16::from_be_bytes(*p)).collect())
}

/// RFC 8446 §4.1.2 / RFC 5246 §7.4.1.2. TLS ≤ 1.2 allows the extensions block to be absent.
fn decode_client_hello(body: &[u8]) -> Result<ClientHello, Field> {
    let mut r = Reader::new(body);
    let legacy_version = r.u16("legacy_version")?;
    let random = r.array::<32>("random")?;
    r.vec8("legacy_session_id")?;
    let suites = r.vec16("cipher_suites")?;
    let cipher_suites = u16_list(suites.rest, "cipher_suites")?;
    r.vec8("legacy_compression_methods")?;
    let mut hello = ClientHello {
        legacy_version,
        random,
        sni: None,
        alpn: Vec::new(),
        supported_versions: Vec::new(),
        cipher_suites,
    };
    if r.is_empty() {
        return Ok(hello);
    }
    let mut exts = r.vec16("extensions")?;
    while !exts.is_empty() {
        let ext_type = exts.u16("extension_type")?;
        let mut data = exts.vec16("extension_data")?;
        match ext_type {
            EXT_SERVER_NAME => hello.sni = parse_server_name(data)?,
            EXT_ALPN => hello.alpn = parse_alpn(data)?,
            EXT_SUPPORTED_VERSIONS => {
                // ClientHello form: ProtocolVersion versions<2..254> (RFC 8446 §4.2.1).
                let list = data.vec8("supported_versions")?;
                hello.supported_versions = u16_list(list.rest, "supported_versions")?;
            }
            _ => {}
        }
    }
    Ok(hello)
}

/// RFC 6066 §3: `ServerName server_name_list<1..2^16-1>`, each `NameType name_type` then, for
/// `host_name(0)`, `HostName opaque<1..2^16-1>`. The first host_name is returned. Other name
/// types have no defined encoding, so reading stops there.
fn parse_server_name(mut data: Reader<'_>) -> Result<Option<String>, Field> {
    if data.is_empty() {
        // A ServerHello/EncryptedExtensions echo is empty; tolerate it here too.
        return Ok(None);
    }
    let mut list = data.vec16("server_name_list")?;
    if list.is_empty() || list.u8("name_type")? != 0 {
        return Ok(None);
    }
    let name = list.vec16("host_name")?;
    Ok(Some(text(name.rest)))
}

/// RFC 7301 §3.1: `ProtocolName protocol_name_list<2..2^16-1>`, `opaque ProtocolName<1..2^8-1>`.
fn parse_alpn(mut data: Reader<'_>) -> Result<Vec<String>, Field> {
    let mut list = data.vec16("protocol_name_list")?;
    let mut names = Vec::new();
    while !list.is_empty() {
        let name = list.vec8("protocol_name")?;
        names.push(text(name.rest));
    }
    Ok(names)
}

/// RFC 8446 §4.1.3 / RFC 5246 §7.4.1.3.
fn decode_server_hello(body: &[u8]) -> Result<ServerHello, Field> {
    let mut r = Reader::new(body);
    let legacy_version = r.u16("legacy_version")?;
    let random = r.array::<32>("random")?;
    r.vec8("legacy_session_id_echo")?;
    let cipher_suite = r.u16("cipher_suite")?;
    r.u8("legacy_compression_method")?;
    let mut hello = ServerHello {
        legacy_version,
        random,
        cipher_suite,
        selected_version: None,
    };
    if r.is_empty() {
        return Ok(hello);
    }
    let mut exts = r.vec16("extensions")?;
    while !exts.is_empty() {
        let ext_type = exts.u16("extension_type")?;
        let mut data = exts.vec16("extension_data")?;
        if ext_type == EXT_SUPPORTED_VERSIONS {
            // ServerHello form: a single ProtocolVersion selected_version (RFC 8446 §4.2.1).
            hello.selected_version = Some(data.u16("selected_version")?);
        }
    }
    Ok(hello)
}

/// The leaf (first) certificate of a Certificate message, or `None` for an empty list.
/// TLS ≤ 1.2 (RFC 5246 §7.4.2): `ASN.1Cert certificate_list<0..2^24-1>`, each
/// `opaque ASN.1Cert<1..2^24-1>`. The TLS 1.3 form (RFC 8446 §4.4.2: a request context first,
/// extensions after each entry) is tried when the first does not fit exactly.
fn leaf_certificate(body: &[u8]) -> Result<Option<&[u8]>, Field> {
    let mut r = Reader::new(body);
    if let Ok(mut list) = r.vec24("certificate_list")
        && r.is_empty()
    {
        if list.is_empty() {
            return Ok(None);
        }
        return list.vec24("ASN.1Cert").map(|c| Some(c.rest));
    }
    let mut r = Reader::new(body);
    r.vec8("certificate_request_context")?;
    let mut list = r.vec24("certificate_list")?;
    if list.is_empty() {
        return Ok(None);
    }
    list.vec24("cert_data").map(|c| Some(c.rest))
}

/// Text from the wire for display: lossy UTF-8, control and bidi/invisible format characters
/// escaped, at most 255 characters.
fn text(bytes: &[u8]) -> String {
    clean(&String::from_utf8_lossy(bytes))
}

fn clean(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i >= MAX_TEXT_CHARS {
            out.push('…');
            break;
        }
        let hidden = matches!(c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}');
        if c.is_control() || hidden {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Minimal bounded DER walker (X.690 §8.1 / §10.1, RFC 5280 §4.1). It walks a fixed path, no
// recursion; every read is checked against the enclosing length.

const DER_INTEGER: u8 = 0x02;
const DER_OCTET_STRING: u8 = 0x04;
const DER_OID: u8 = 0x06;
const DER_BOOLEAN: u8 = 0x01;
const DER_SEQUENCE: u8 = 0x30;
const DER_SET: u8 = 0x31;
/// `[0] EXPLICIT Version` in TBSCertificate.
const DER_CTX0: u8 = 0xA0;
/// `[3] EXPLICIT Extensions` in TBSCertificate.
const DER_CTX3: u8 = 0xA3;
/// GeneralName `dNSName [2] IA5String` (implicit, primitive).
const DER_DNS_NAME: u8 = 0x82;
/// id-at-commonName 2.5.4.3 (RFC 5280 Appendix A).
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// id-ce-subjectAltName 2.5.29.17 (RFC 5280 §4.2.1.6).
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1D, 0x11];

/// One TLV: (tag, contents, rest). Only low tag numbers and definite lengths of up to 4 length
/// octets (DER forbids the indefinite form, X.690 §10.1).
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1F == 0x1F {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            return None;
        }
        let (len_bytes, rest) = rest.split_at_checked(n)?;
        let mut be = [0u8; 4];
        copy_into(&mut be, 4usize.saturating_sub(n), len_bytes);
        (usize::try_from(u32::from_be_bytes(be)).ok()?, rest)
    };
    let (content, rest) = rest.split_at_checked(len)?;
    Some((tag, content, rest))
}

/// The contents of a TLV with tag `tag`, and what follows it.
fn der_expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match der_next(input)? {
        (t, content, rest) if t == tag => Some((content, rest)),
        _ => None,
    }
}

/// The TLVs directly inside `content`, stopping at the first one that does not parse.
fn der_items(content: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut rest = content;
    std::iter::from_fn(move || {
        let (tag, item, tail) = der_next(rest)?;
        rest = tail;
        Some((tag, item))
    })
}

/// The leaf certificate's subject commonName(s) then subjectAltName dNSNames, duplicates
/// removed, at most 64. Empty when the DER cannot be walked as far as the subject.
#[must_use]
pub fn certificate_subjects(der: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    // `None` just means the walk stopped; what was found so far is kept.
    let _ = walk_certificate(der, &mut out);
    out
}

fn walk_certificate(der: &[u8], out: &mut Vec<String>) -> Option<()> {
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    let (cert, _) = der_expect(der, DER_SEQUENCE)?;
    let (tbs, _) = der_expect(cert, DER_SEQUENCE)?;
    // TBSCertificate ::= SEQUENCE { version [0] EXPLICIT DEFAULT v1, serialNumber, signature,
    //   issuer, validity, subject, subjectPublicKeyInfo, issuerUniqueID [1] IMPLICIT OPTIONAL,
    //   subjectUniqueID [2] IMPLICIT OPTIONAL, extensions [3] EXPLICIT OPTIONAL }
    let tbs = match der_expect(tbs, DER_CTX0) {
        Some((_, rest)) => rest,
        None => tbs,
    };
    let (_, tbs) = der_expect(tbs, DER_INTEGER)?; // serialNumber
    let (_, tbs) = der_expect(tbs, DER_SEQUENCE)?; // signature AlgorithmIdentifier
    let (_, tbs) = der_expect(tbs, DER_SEQUENCE)?; // issuer Name
    let (_, tbs) = der_expect(tbs, DER_SEQUENCE)?; // validity
    let (subject, tbs) = der_expect(tbs, DER_SEQUENCE)?;
    collect_common_names(subject, out);
    let (_, tbs) = der_expect(tbs, DER_SEQUENCE)?; // subjectPublicKeyInfo
    let (_, extensions) = der_items(tbs).find(|&(tag, _)| tag == DER_CTX3)?;
    collect_dns_names(extensions, out);
    Some(())
}

/// Name ::= SEQUENCE OF RelativeDistinguishedName; RDN ::= SET OF AttributeTypeAndValue;
/// AttributeTypeAndValue ::= SEQUENCE { type OID, value ANY } (RFC 5280 §4.1.2.4).
fn collect_common_names(name: &[u8], out: &mut Vec<String>) {
    for (_, rdn) in der_items(name).filter(|&(tag, _)| tag == DER_SET) {
        for (_, atv) in der_items(rdn).filter(|&(tag, _)| tag == DER_SEQUENCE) {
            let Some((oid, rest)) = der_expect(atv, DER_OID) else {
                continue;
            };
            if oid != OID_COMMON_NAME {
                continue;
            }
            if let Some((tag, value, _)) = der_next(rest)
                && let Some(s) = der_string(tag, value)
            {
                add_subject(out, s);
            }
        }
    }
}

/// `[3] EXPLICIT Extensions`; Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT
/// FALSE, extnValue OCTET STRING }; subjectAltName's extnValue holds GeneralNames ::= SEQUENCE
/// OF GeneralName (RFC 5280 §4.1.2.9, §4.2.1.6).
fn collect_dns_names(explicit: &[u8], out: &mut Vec<String>) {
    let Some((extensions, _)) = der_expect(explicit, DER_SEQUENCE) else {
        return;
    };
    for (_, ext) in der_items(extensions).filter(|&(tag, _)| tag == DER_SEQUENCE) {
        let Some((oid, rest)) = der_expect(ext, DER_OID) else {
            continue;
        };
        if oid != OID_SUBJECT_ALT_NAME {
            continue;
        }
        let rest = der_expect(rest, DER_BOOLEAN).map_or(rest, |(_, r)| r);
        let Some((value, _)) = der_expect(rest, DER_OCTET_STRING) else {
            continue;
        };
        let Some((names, _)) = der_expect(value, DER_SEQUENCE) else {
            continue;
        };
        for (_, dns) in der_items(names).filter(|&(tag, _)| tag == DER_DNS_NAME) {
            add_subject(out, text(dns));
        }
    }
}

fn add_subject(out: &mut Vec<String>, s: String) {
    if out.len() < MAX_SUBJECTS && !out.contains(&s) {
        out.push(s);
    }
}

/// DirectoryString and friends (X.680 §41): UTF8String, PrintableString, TeletexString (read
/// as Latin-1), IA5String, VisibleString, UniversalString (UTF-32BE), BMPString (UTF-16BE).
fn der_string(tag: u8, value: &[u8]) -> Option<String> {
    let s = match tag {
        0x0C | 0x13 | 0x16 | 0x1A => String::from_utf8_lossy(value).into_owned(),
        0x14 => value.iter().map(|&b| char::from(b)).collect(),
        0x1E => {
            let (units, _) = value.as_chunks::<2>();
            char::decode_utf16(units.iter().map(|u| u16::from_be_bytes(*u)))
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        }
        0x1C => {
            let (units, _) = value.as_chunks::<4>();
            units
                .iter()
                .map(|u| {
                    char::from_u32(u32::from_be_bytes(*u)).unwrap_or(char::REPLACEMENT_CHARACTER)
                })
                .collect()
        }
        _ => return None,
    };
    Some(clean(&s))
}

// ---------------------------------------------------------------------------------------------
// Names for the Info column and details.

/// Record content type name (RFC 8446 §5.1, RFC 6520 for Heartbeat).
#[must_use]
pub fn content_type_name(t: u8) -> &'static str {
    match t {
        CT_CHANGE_CIPHER_SPEC => "Change Cipher Spec",
        CT_ALERT => "Alert",
        CT_HANDSHAKE => "Handshake",
        CT_APPLICATION_DATA => "Application Data",
        CT_HEARTBEAT => "Heartbeat",
        _ => "Unknown",
    }
}

/// Handshake message name (RFC 8446 §4, RFC 5246 §7.4, RFC 6066, RFC 8879).
#[must_use]
pub fn handshake_name(t: u8) -> &'static str {
    match t {
        0 => "Hello Request",
        1 => "Client Hello",
        2 => "Server Hello",
        3 => "Hello Verify Request",
        4 => "New Session Ticket",
        5 => "End Of Early Data",
        8 => "Encrypted Extensions",
        11 => "Certificate",
        12 => "Server Key Exchange",
        13 => "Certificate Request",
        14 => "Server Hello Done",
        15 => "Certificate Verify",
        16 => "Client Key Exchange",
        20 => "Finished",
        21 => "Certificate URL",
        22 => "Certificate Status",
        24 => "Key Update",
        25 => "Compressed Certificate",
        254 => "Message Hash",
        _ => "Unknown Handshake Message",
    }
}

/// GREASE values look like 0x?A?A with equal bytes (RFC 8701 §2).
fn is_grease(v: u16) -> bool {
    let [hi, lo] = v.to_be_bytes();
    hi == lo && lo & 0x0F == 0x0A
}

/// Protocol version name, Wireshark style: "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3".
#[must_use]
pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSLv3".into(),
        0x0301 => "TLSv1".into(),
        0x0302 => "TLSv1.1".into(),
        0x0303 => "TLSv1.2".into(),
        0x0304 => "TLSv1.3".into(),
        v if is_grease(v) => format!("Reserved (GREASE) 0x{v:04X}"),
        v if v >> 8 == 0x7F => format!("TLSv1.3 (draft {})", v & 0xFF),
        v => format!("0x{v:04X}"),
    }
}

/// IANA name of a cipher suite (TLS Cipher Suites registry); unknown → "0xC0FF"-style hex.
#[must_use]
pub fn cipher_suite_name(cs: u16) -> String {
    let name = match cs {
        0x0000 => "TLS_NULL_WITH_NULL_NULL",
        0x0004 => "TLS_RSA_WITH_RC4_128_MD5",
        0x0005 => "TLS_RSA_WITH_RC4_128_SHA",
        0x000A => "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        0x0016 => "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA",
        0x002F => "TLS_RSA_WITH_AES_128_CBC_SHA",
        0x0033 => "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
        0x0035 => "TLS_RSA_WITH_AES_256_CBC_SHA",
        0x0039 => "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
        0x003C => "TLS_RSA_WITH_AES_128_CBC_SHA256",
        0x003D => "TLS_RSA_WITH_AES_256_CBC_SHA256",
        0x0067 => "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
        0x006B => "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
        0x009C => "TLS_RSA_WITH_AES_128_GCM_SHA256",
        0x009D => "TLS_RSA_WITH_AES_256_GCM_SHA384",
        0x009E => "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        0x009F => "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        0x00FF => "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
        0x1301 => "TLS_AES_128_GCM_SHA256",
        0x1302 => "TLS_AES_256_GCM_SHA384",
        0x1303 => "TLS_CHACHA20_POLY1305_SHA256",
        0x1304 => "TLS_AES_128_CCM_SHA256",
        0x1305 => "TLS_AES_128_CCM_8_SHA256",
        0x5600 => "TLS_FALLBACK_SCSV",
        0xC008 => "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA",
        0xC009 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        0xC00A => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        0xC012 => "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        0xC013 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        0xC014 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        0xC023 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        0xC024 => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
        0xC027 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        0xC028 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
        0xC02B => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        0xC02C => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        0xC02F => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        0xC030 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        0xCCA8 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xCCA9 => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        0xCCAA => "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        cs if is_grease(cs) => return format!("Reserved (GREASE) 0x{cs:04X}"),
        cs => return format!("0x{cs:04X}"),
    };
    name.to_owned()
}

/// Alert level name (RFC 5246 §7.2).
#[must_use]
pub fn alert_level_name(level: u8) -> String {
    match level {
        1 => "Warning".into(),
        2 => "Fatal".into(),
        l => format!("Unknown ({l})"),
    }
}

/// Alert description name (RFC 8446 §6, RFC 5246 §7.2, RFC 6066, RFC 7301).
#[must_use]
pub fn alert_description_name(description: u8) -> String {
    let name = match description {
        0 => "Close Notify",
        10 => "Unexpected Message",
        20 => "Bad Record MAC",
        21 => "Decryption Failed",
        22 => "Record Overflow",
        30 => "Decompression Failure",
        40 => "Handshake Failure",
        41 => "No Certificate",
        42 => "Bad Certificate",
        43 => "Unsupported Certificate",
        44 => "Certificate Revoked",
        45 => "Certificate Expired",
        46 => "Certificate Unknown",
        47 => "Illegal Parameter",
        48 => "Unknown CA",
        49 => "Access Denied",
        50 => "Decode Error",
        51 => "Decrypt Error",
        60 => "Export Restriction",
        70 => "Protocol Version",
        71 => "Insufficient Security",
        80 => "Internal Error",
        86 => "Inappropriate Fallback",
        90 => "User Canceled",
        100 => "No Renegotiation",
        109 => "Missing Extension",
        110 => "Unsupported Extension",
        111 => "Certificate Unobtainable",
        112 => "Unrecognized Name",
        113 => "Bad Certificate Status Response",
        114 => "Bad Certificate Hash Value",
        115 => "Unknown PSK Identity",
        116 => "Certificate Required",
        120 => "No Application Protocol",
        d => return format!("Unknown ({d})"),
    };
    name.to_owned()
}

/// One handshake message for Info: "Client Hello (SNI=jabber.ccc.de)", "Hello Retry Request",
/// or the message name.
pub fn handshake_summary(h: &Handshake) -> String {
    if let Some(ch) = &h.client_hello
        && let Some(sni) = &ch.sni
    {
        return format!("Client Hello (SNI={sni})");
    }
    if h.server_hello
        .as_ref()
        .is_some_and(ServerHello::is_hello_retry_request)
    {
        return "Hello Retry Request".into();
    }
    handshake_name(h.msg_type).into()
}

/// One line like Wireshark's Info for a record.
pub fn record_summary(r: &TlsRecord) -> String {
    match r.content_type {
        CT_HANDSHAKE if r.encrypted => "Encrypted Handshake Message".into(),
        CT_HANDSHAKE => {
            let mut parts: Vec<String> = r.handshakes.iter().map(handshake_summary).collect();
            if let Some(t) = r.incomplete_handshake {
                parts.push(format!("{} (fragment)", handshake_name(t)));
            }
            if parts.is_empty() {
                "Handshake (not decoded)".into()
            } else {
                parts.join(", ")
            }
        }
        CT_APPLICATION_DATA => format!("Application Data (encrypted, {} bytes)", r.length),
        CT_CHANGE_CIPHER_SPEC => "Change Cipher Spec".into(),
        CT_ALERT => match r.alert {
            Some((level, description)) => format!(
                "Alert (Level: {}, Description: {})",
                alert_level_name(level),
                alert_description_name(description)
            ),
            None if r.encrypted => "Encrypted Alert".into(),
            None => "Alert".into(),
        },
        CT_HEARTBEAT if r.encrypted => "Encrypted Heartbeat".into(),
        CT_HEARTBEAT => "Heartbeat".into(),
        t => format!("Unknown Record (type {t})"),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // ----- byte builders (TLS presentation language, RFC 8446 §3) -----

    fn v8(b: &[u8]) -> Vec<u8> {
        let mut v = vec![u8::try_from(b.len()).unwrap()];
        v.extend_from_slice(b);
        v
    }

    fn v16(b: &[u8]) -> Vec<u8> {
        let mut v = u16::try_from(b.len()).unwrap().to_be_bytes().to_vec();
        v.extend_from_slice(b);
        v
    }

    fn v24(b: &[u8]) -> Vec<u8> {
        let n = u32::try_from(b.len()).unwrap().to_be_bytes();
        let mut v = n[1..].to_vec();
        v.extend_from_slice(b);
        v
    }

    fn ext(ext_type: u16, data: &[u8]) -> Vec<u8> {
        [ext_type.to_be_bytes().to_vec(), v16(data)].concat()
    }

    fn hs(msg_type: u8, body: &[u8]) -> Vec<u8> {
        [vec![msg_type], v24(body)].concat()
    }

    fn record(content_type: u8, payload: &[u8]) -> Vec<u8> {
        record_v(content_type, 0x0303, payload)
    }

    fn record_v(content_type: u8, version: u16, payload: &[u8]) -> Vec<u8> {
        [
            vec![content_type],
            version.to_be_bytes().to_vec(),
            v16(payload),
        ]
        .concat()
    }

    fn client_random() -> [u8; 32] {
        std::array::from_fn(|i| u8::try_from(i).unwrap())
    }

    fn server_random() -> [u8; 32] {
        std::array::from_fn(|i| 0xF0 ^ u8::try_from(i).unwrap())
    }

    /// ClientHello with SNI jabber.ccc.de, ALPN xmpp-client, supported_versions 1.3+1.2, a
    /// GREASE extension and an extension we skip (supported_groups).
    fn client_hello_body() -> Vec<u8> {
        let sni = ext(0, &v16(&[vec![0], v16(b"jabber.ccc.de")].concat()));
        let exts = [
            ext(0x0A0A, &[]),
            sni,
            ext(10, &v16(&[0x00, 0x1D, 0x00, 0x17])),
            ext(16, &v16(&v8(b"xmpp-client"))),
            ext(43, &v8(&[0x03, 0x04, 0x03, 0x03])),
        ]
        .concat();
        [
            vec![0x03, 0x03],
            client_random().to_vec(),
            v8(&[0xAA; 32]),
            v16(&[0x13, 0x01, 0x13, 0x02, 0x13, 0x03, 0xC0, 0x2F, 0x0A, 0x0A]),
            v8(&[0]),
            v16(&exts),
        ]
        .concat()
    }

    fn server_hello_body(random: [u8; 32], tls13: bool) -> Vec<u8> {
        let (suite, exts) = if tls13 {
            let key_share = ext(51, &[0x00, 0x1D, 0x00, 0x04, 1, 2, 3, 4]);
            (0x1301u16, [ext(43, &[0x03, 0x04]), key_share].concat())
        } else {
            (0xC02F, ext(0xFF01, &v8(&[])))
        };
        [
            vec![0x03, 0x03],
            random.to_vec(),
            v8(&[0xAA; 32]),
            suite.to_be_bytes().to_vec(),
            vec![0],
            v16(&exts),
        ]
        .concat()
    }

    // ----- DER builders (X.690) -----

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let n = content.len();
        let mut v = vec![tag];
        if n < 0x80 {
            v.push(u8::try_from(n).unwrap());
        } else if n < 0x100 {
            v.extend([0x81, u8::try_from(n).unwrap()]);
        } else {
            v.push(0x82);
            v.extend(u16::try_from(n).unwrap().to_be_bytes());
        }
        v.extend_from_slice(content);
        v
    }

    fn name(cn_tag: u8, cn: &[u8]) -> Vec<u8> {
        let org = tlv(
            0x31,
            &tlv(
                0x30,
                &[tlv(0x06, &[0x55, 4, 0x0A]), tlv(0x13, b"XMPP Test")].concat(),
            ),
        );
        let cn = tlv(
            0x31,
            &tlv(0x30, &[tlv(0x06, &[0x55, 4, 3]), tlv(cn_tag, cn)].concat()),
        );
        tlv(0x30, &[org, cn].concat())
    }

    /// A small X.509 v3 certificate: subject CN=jabber.ccc.de, SAN dNSName jabber.ccc.de and
    /// xmpp.ccc.de plus a URI, a critical basicConstraints before the SAN, long-form lengths.
    fn certificate_with(subject: Vec<u8>) -> Vec<u8> {
        let alg = tlv(
            0x30,
            &[
                tlv(0x06, &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 1, 1, 0x0B]),
                tlv(0x05, &[]),
            ]
            .concat(),
        );
        let validity = tlv(
            0x30,
            &[tlv(0x17, b"250101000000Z"), tlv(0x17, b"270101000000Z")].concat(),
        );
        let spki = tlv(0x30, &[alg.clone(), tlv(0x03, &[0u8; 140])].concat());
        let basic = tlv(
            0x30,
            &[
                tlv(0x06, &[0x55, 0x1D, 0x13]),
                tlv(0x01, &[0xFF]),
                tlv(0x04, &tlv(0x30, &[])),
            ]
            .concat(),
        );
        let names = tlv(
            0x30,
            &[
                tlv(0x82, b"jabber.ccc.de"),
                tlv(0x82, b"xmpp.ccc.de"),
                tlv(0x86, b"xmpp:jabber.ccc.de"),
            ]
            .concat(),
        );
        let san = tlv(
            0x30,
            &[tlv(0x06, &[0x55, 0x1D, 0x11]), tlv(0x04, &names)].concat(),
        );
        let exts = tlv(0xA3, &tlv(0x30, &[basic, san].concat()));
        let tbs = tlv(
            0x30,
            &[
                tlv(0xA0, &tlv(0x02, &[2])),
                tlv(0x02, &[0x01, 0x23, 0x45]),
                alg.clone(),
                name(0x0C, b"Test CA"),
                validity,
                subject,
                spki,
                exts,
            ]
            .concat(),
        );
        tlv(0x30, &[tbs, alg, tlv(0x03, &[0u8; 300])].concat())
    }

    fn test_certificate() -> Vec<u8> {
        certificate_with(name(0x0C, b"jabber.ccc.de"))
    }

    /// TLS ≤ 1.2 Certificate body: certificate_list of the leaf and a fake CA cert.
    fn certificate_body(leaf: &[u8]) -> Vec<u8> {
        v24(&[v24(leaf), v24(&[0x30, 0x03, 0x02, 0x01, 0x00])].concat())
    }

    /// Client side of a TLS 1.2 handshake (client offered 1.3 too): ClientHello,
    /// ClientKeyExchange, CCS, encrypted Finished, application data, encrypted alert.
    fn client_flight() -> Vec<u8> {
        [
            record_v(22, 0x0301, &hs(1, &client_hello_body())),
            record(22, &hs(16, &v8(&[0x42; 32]))),
            record(20, &[1]),
            record(22, &[0x5C; 40]),
            record(23, &[0x77; 293]),
            record(21, &[0x33; 26]),
        ]
        .concat()
    }

    /// Server side of a TLS 1.2 handshake: ServerHello + Certificate + ServerHelloDone in one
    /// record, CCS, encrypted Finished, application data.
    fn server_flight() -> Vec<u8> {
        let flight = [
            hs(2, &server_hello_body(server_random(), false)),
            hs(11, &certificate_body(&test_certificate())),
            hs(14, &[]),
        ]
        .concat();
        [
            record(22, &flight),
            record(20, &[1]),
            record(22, &[0xA5; 40]),
            record(23, &[0x66; 100]),
        ]
        .concat()
    }

    // ----- running -----

    fn push_all(stream: &mut TlsStream, data: &[u8], events: &mut Vec<TlsEvent>) {
        stream.push(data, &mut |e| events.push(e));
    }

    fn run(data: &[u8]) -> Vec<TlsEvent> {
        run_split(data, &[])
    }

    /// Pushes `data` cut at the given (sorted) positions.
    fn run_split(data: &[u8], cuts: &[usize]) -> Vec<TlsEvent> {
        let mut stream = TlsStream::new(TlsLimits::default());
        let mut events = Vec::new();
        let mut from = 0;
        for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
            push_all(&mut stream, &data[from..cut], &mut events);
            from = cut;
        }
        events
    }

    fn records(events: &[TlsEvent]) -> Vec<TlsRecord> {
        events
            .iter()
            .filter_map(|e| match e {
                TlsEvent::Record(r) => Some(r.clone()),
                TlsEvent::Note { .. } => None,
            })
            .collect()
    }

    fn notes(events: &[TlsEvent]) -> Vec<(TlsNoteKind, u64)> {
        events
            .iter()
            .filter_map(|e| match e {
                TlsEvent::Note { kind, offset, .. } => Some((*kind, *offset)),
                TlsEvent::Record(_) => None,
            })
            .collect()
    }

    fn summaries(events: &[TlsEvent]) -> Vec<String> {
        records(events).iter().map(record_summary).collect()
    }

    // ----- tests -----

    #[test]
    fn client_hello_fields_decoded() {
        let events = run(&client_flight());
        assert!(notes(&events).is_empty(), "{events:?}");
        let recs = records(&events);
        let first = &recs[0];
        assert_eq!(
            (first.content_type, first.version, first.start),
            (22, 0x0301, 0)
        );
        assert_eq!(first.end, 5 + u64::from(first.length));
        assert_eq!(first.handshakes.len(), 1);
        let h = &first.handshakes[0];
        assert_eq!(h.msg_type, HS_CLIENT_HELLO);
        assert_eq!(h.length as usize, client_hello_body().len());
        let ch = h.client_hello.as_ref().unwrap();
        assert_eq!(ch.legacy_version, 0x0303);
        assert_eq!(ch.random, client_random());
        assert_eq!(ch.sni.as_deref(), Some("jabber.ccc.de"));
        assert_eq!(ch.alpn, vec!["xmpp-client".to_string()]);
        assert_eq!(ch.supported_versions, vec![0x0304, 0x0303]);
        assert_eq!(
            ch.cipher_suites,
            vec![0x1301, 0x1302, 0x1303, 0xC02F, 0x0A0A]
        );
        assert!(h.server_hello.is_none() && h.certificate_subjects.is_empty());
        assert_eq!(
            summaries(&events),
            vec![
                "Client Hello (SNI=jabber.ccc.de)",
                "Client Key Exchange",
                "Change Cipher Spec",
                "Encrypted Handshake Message",
                "Application Data (encrypted, 293 bytes)",
                "Encrypted Alert",
            ]
        );
    }

    #[test]
    fn server_hello_certificate_done_share_one_record() {
        let events = run(&server_flight());
        assert!(notes(&events).is_empty(), "{events:?}");
        let recs = records(&events);
        let kinds: Vec<u8> = recs[0].handshakes.iter().map(|h| h.msg_type).collect();
        assert_eq!(kinds, vec![2, 11, 14]);
        let sh = recs[0].handshakes[0].server_hello.as_ref().unwrap();
        assert_eq!(sh.legacy_version, 0x0303);
        assert_eq!(sh.random, server_random());
        assert_eq!(sh.cipher_suite, 0xC02F);
        assert_eq!(sh.selected_version, None);
        assert!(!sh.is_hello_retry_request());
        assert_eq!(
            recs[0].handshakes[1].certificate_subjects,
            vec!["jabber.ccc.de".to_string(), "xmpp.ccc.de".to_string()]
        );
        assert_eq!(recs[0].handshakes[2].length, 0);
        assert_eq!(
            summaries(&events),
            vec![
                "Server Hello, Certificate, Server Hello Done",
                "Change Cipher Spec",
                "Encrypted Handshake Message",
                "Application Data (encrypted, 100 bytes)",
            ]
        );
    }

    #[test]
    fn tls13_server_hello_fields_and_direction_becomes_encrypted() {
        let data = [
            record(22, &hs(2, &server_hello_body(server_random(), true))),
            record(20, &[1]),
            record(23, &[9; 50]),
            // A type-22 record after a TLS 1.3 ServerHello cannot be plaintext.
            record(22, &hs(20, &[0; 32])),
        ]
        .concat();
        let mut stream = TlsStream::new(TlsLimits::default());
        let mut events = Vec::new();
        push_all(&mut stream, &data, &mut events);
        assert!(stream.is_encrypted());
        let recs = records(&events);
        let sh = recs[0].handshakes[0].server_hello.as_ref().unwrap();
        assert_eq!(sh.cipher_suite, 0x1301);
        assert_eq!(sh.selected_version, Some(TLS13));
        assert_eq!(sh.negotiated_version(), TLS13);
        assert_eq!(
            summaries(&events),
            vec![
                "Server Hello",
                "Change Cipher Spec",
                "Application Data (encrypted, 50 bytes)",
                "Encrypted Handshake Message",
            ]
        );
        assert!(recs[3].handshakes.is_empty() && recs[3].encrypted);
    }

    #[test]
    fn every_split_position_yields_identical_events() {
        for data in [client_flight(), server_flight()] {
            let whole = run(&data);
            assert!(records(&whole).len() >= 4);
            for cut in 0..=data.len() {
                assert_eq!(run_split(&data, &[cut]), whole, "cut at {cut}");
            }
        }
    }

    #[test]
    fn several_records_in_one_push() {
        let data = [
            client_flight(),
            record(23, &[1; 10]),
            record(23, &[]),
            record(24, &[2; 3]),
        ]
        .concat();
        let events = run(&data);
        let recs = records(&events);
        assert_eq!(recs.len(), 9);
        // Records tile the stream: each starts where the previous ended.
        for pair in recs.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        assert_eq!(recs.last().unwrap().end, data.len() as u64);
        assert_eq!(
            record_summary(&recs[7]),
            "Application Data (encrypted, 0 bytes)"
        );
        assert_eq!(record_summary(&recs[8]), "Encrypted Heartbeat");
    }

    #[test]
    fn one_record_across_many_pushes() {
        let data = server_flight();
        let mut stream = TlsStream::new(TlsLimits::default());
        let mut events = Vec::new();
        for byte in &data {
            push_all(&mut stream, std::slice::from_ref(byte), &mut events);
        }
        assert_eq!(events, run(&data));
        assert_eq!(stream.offset(), data.len() as u64);
        assert_eq!(stream.buffered_bytes(), 0);
    }

    #[test]
    fn handshake_message_spanning_two_records() {
        let msg = hs(1, &client_hello_body());
        let (a, b) = msg.split_at(70);
        let data = [record(22, a), record(22, b)].concat();
        let events = run(&data);
        assert!(notes(&events).is_empty());
        let recs = records(&events);
        assert!(recs[0].handshakes.is_empty());
        assert_eq!(recs[0].incomplete_handshake, Some(HS_CLIENT_HELLO));
        assert_eq!(record_summary(&recs[0]), "Client Hello (fragment)");
        assert_eq!(recs[1].handshakes.len(), 1);
        assert_eq!(recs[1].incomplete_handshake, None);
        let ch = recs[1].handshakes[0].client_hello.as_ref().unwrap();
        assert_eq!(ch.sni.as_deref(), Some("jabber.ccc.de"));
        assert_eq!(record_summary(&recs[1]), "Client Hello (SNI=jabber.ccc.de)");

        // Split inside the 4-byte handshake header, and across three records.
        let (a, rest) = msg.split_at(2);
        let (b, c) = rest.split_at(100);
        let events = run(&[record(22, a), record(22, b), record(22, c)].concat());
        assert!(notes(&events).is_empty());
        let recs = records(&events);
        assert_eq!(recs[0].incomplete_handshake, Some(HS_CLIENT_HELLO));
        assert_eq!(
            recs[2].handshakes[0].client_hello.as_ref().unwrap().alpn,
            vec!["xmpp-client"]
        );
    }

    #[test]
    fn application_data_1mb_keeps_buffer_small() {
        let rec = record(23, &[0xEE; 16384]);
        let mut stream = TlsStream::new(TlsLimits::default());
        let mut count = 0u64;
        let mut bytes = 0u64;
        let mut sink = |e: TlsEvent| match e {
            TlsEvent::Record(r) => {
                count += 1;
                bytes += u64::from(r.length);
            }
            TlsEvent::Note { .. } => panic!("unexpected note {e:?}"),
        };
        let stream_bytes = rec.repeat(64);
        for piece in stream_bytes.chunks(1000) {
            stream.push(piece, &mut sink);
            assert!(stream.buffered_bytes() <= RECORD_HEADER_LEN);
        }
        assert_eq!((count, bytes), (64, 1 << 20));
    }

    #[test]
    fn garbage_bytes_give_not_tls_note() {
        let mut stream = TlsStream::new(TlsLimits::default());
        let mut events = Vec::new();
        push_all(
            &mut stream,
            b"<stream:stream xmlns='jabber:client'>",
            &mut events,
        );
        assert_eq!(notes(&events), vec![(TlsNoteKind::NotTls, 0)]);
        assert!(stream.is_failed());
        push_all(&mut stream, &[22, 3, 3, 0, 1, 1], &mut events);
        assert_eq!(events.len(), 1, "nothing after failure");
        assert_eq!(stream.offset(), 43);
        assert_eq!(stream.buffered_bytes(), 0);

        // Bad version, bad length, SSLv2-style hello, after a good record.
        let good = record(23, &[0; 4]);
        for bad in [
            [23, 3, 9, 0, 1],
            [23, 3, 3, 0xFF, 0xFF],
            [0x80, 0x2E, 1, 3, 1],
        ] {
            let events = run(&[good.clone(), bad.to_vec()].concat());
            assert_eq!(records(&events).len(), 1);
            assert_eq!(notes(&events), vec![(TlsNoteKind::NotTls, 9)]);
        }
    }

    #[test]
    fn plaintext_alert_summary() {
        let events = run(&[record(21, &[2, 40]), record(21, &[1, 0])].concat());
        assert_eq!(records(&events)[0].alert, Some((2, 40)));
        assert_eq!(
            summaries(&events),
            vec![
                "Alert (Level: Fatal, Description: Handshake Failure)",
                "Alert (Level: Warning, Description: Close Notify)",
            ]
        );
    }

    #[test]
    fn hello_retry_request_then_compat_ccs_keeps_second_hello_plaintext() {
        // Server: HRR, CCS, ServerHello (plaintext, RFC 8446 D.4), then encrypted.
        let server = [
            record(
                22,
                &hs(2, &server_hello_body(HELLO_RETRY_REQUEST_RANDOM, true)),
            ),
            record(20, &[1]),
            record(22, &hs(2, &server_hello_body(server_random(), true))),
            record(22, &hs(2, &server_hello_body(server_random(), true))),
        ]
        .concat();
        let events = run(&server);
        assert!(notes(&events).is_empty(), "{events:?}");
        assert_eq!(
            summaries(&events),
            vec![
                "Hello Retry Request",
                "Change Cipher Spec",
                "Server Hello",
                "Encrypted Handshake Message",
            ]
        );
        // Client: ClientHello offering 1.3, CCS, second ClientHello (plaintext), then a
        // handshake record that is not a hello (encrypted Finished of a TLS 1.2 session).
        let client = [
            record(22, &hs(1, &client_hello_body())),
            record(20, &[1]),
            record(22, &hs(1, &client_hello_body())),
            record(22, &[1, 0, 0, 36, 0x17, 0x9A, 7, 7, 7, 7]),
        ]
        .concat();
        let events = run(&client);
        let recs = records(&events);
        assert!(!recs[2].encrypted);
        assert_eq!(
            summaries(&events),
            vec![
                "Client Hello (SNI=jabber.ccc.de)",
                "Change Cipher Spec",
                "Client Hello (SNI=jabber.ccc.de)",
                "Encrypted Handshake Message",
            ]
        );
        for cut in 0..=client.len() {
            assert_eq!(run_split(&client, &[cut]), events, "cut at {cut}");
        }
    }

    #[test]
    fn set_encrypted_applies_from_next_record() {
        let two = [hs(16, &[1; 10]), hs(15, &[2; 10])].concat();
        let data = [record(22, &two), record(22, &hs(20, &[0; 12]))].concat();
        let mut stream = TlsStream::new(TlsLimits::default());
        let mut events = Vec::new();
        push_all(&mut stream, &data[..12], &mut events);
        stream.set_encrypted();
        assert!(stream.is_encrypted());
        push_all(&mut stream, &data[12..], &mut events);
        assert!(notes(&events).is_empty());
        assert_eq!(
            summaries(&events),
            vec![
                "Client Key Exchange, Certificate Verify",
                "Encrypted Handshake Message",
            ]
        );
        assert!(records(&events)[1].handshakes.is_empty());
    }

    #[test]
    fn key_change_inside_a_handshake_message_is_malformed() {
        let msg = hs(11, &[0; 40]);
        let data = [
            record(22, &msg[..20]),
            record(20, &[1]),
            record(22, &[0; 40]),
        ]
        .concat();
        let events = run(&data);
        assert_eq!(notes(&events), vec![(TlsNoteKind::MalformedHandshake, 31)]);
        assert_eq!(stream_buffer_after(&data), 0);
    }

    fn stream_buffer_after(data: &[u8]) -> usize {
        let mut stream = TlsStream::new(TlsLimits::default());
        stream.push(data, &mut |_| {});
        stream.buffered_bytes()
    }

    #[test]
    fn handshake_too_large_is_named_not_decoded() {
        let limits = TlsLimits {
            max_handshake_bytes: 100,
        };
        let body = client_hello_body();
        assert!(body.len() > 100);
        let msg = hs(1, &body);
        let data = [record(22, &msg[..50]), record(22, &msg[50..])].concat();
        let mut stream = TlsStream::new(limits);
        let mut events = Vec::new();
        for byte in &data {
            push_all(&mut stream, std::slice::from_ref(byte), &mut events);
            assert!(stream.buffered_bytes() <= 16);
        }
        assert_eq!(notes(&events), vec![(TlsNoteKind::HandshakeTooLarge, 5)]);
        let recs = records(&events);
        let h = &recs[1].handshakes[0];
        assert_eq!((h.msg_type, h.length as usize), (1, body.len()));
        assert!(h.client_hello.is_none());
        assert_eq!(record_summary(&recs[1]), "Client Hello");
    }

    #[test]
    fn malformed_client_hello_is_noted_and_named() {
        let events = run(&record(22, &hs(1, &[3, 3, 1, 2, 3])));
        assert_eq!(notes(&events), vec![(TlsNoteKind::MalformedHandshake, 5)]);
        match &events[0] {
            TlsEvent::Note { detail, .. } => assert!(detail.contains("random"), "{detail}"),
            TlsEvent::Record(_) => panic!(),
        }
        assert_eq!(summaries(&events), vec!["Client Hello"]);
        // A lying vector length: supported_versions (the last extension) claims 255 bytes.
        let mut body = client_hello_body();
        let n = body.len();
        assert_eq!(body[n - 5], 4);
        body[n - 5] = 0xFF;
        let events = run(&record(22, &hs(1, &body)));
        assert_eq!(notes(&events), vec![(TlsNoteKind::MalformedHandshake, 5)]);
        match &events[0] {
            TlsEvent::Note { detail, .. } => {
                assert!(detail.contains("supported_versions"), "{detail}");
            }
            TlsEvent::Record(_) => panic!(),
        }
    }

    #[test]
    fn gap_inside_application_data_keeps_framing() {
        let data = [record(23, &[1; 1000]), record(23, &[2; 500])].concat();
        let mut stream = TlsStream::new(TlsLimits::default());
        let mut events = Vec::new();
        push_all(&mut stream, &data[..100], &mut events);
        stream.gap(800, &mut |e| events.push(e));
        push_all(&mut stream, &data[900..], &mut events);
        assert_eq!(events, run(&data));
        // A gap ending exactly at the record end.
        let mut stream = TlsStream::new(TlsLimits::default());
        let mut events = Vec::new();
        push_all(&mut stream, &data[..5], &mut events);
        stream.gap(1000, &mut |e| events.push(e));
        assert_eq!(records(&events).len(), 1);
        push_all(&mut stream, &data[1005..], &mut events);
        assert_eq!(events, run(&data));
    }

    #[test]
    fn gap_across_record_boundary_resyncs() {
        let rec = record(23, &[0xC3; 300]); // 305 bytes: headers at 0, 305, 610, …
        let data = rec.repeat(6);
        let mut stream = TlsStream::new(TlsLimits::default());
        let mut events = Vec::new();
        push_all(&mut stream, &data[..100], &mut events);
        stream.gap(600, &mut |e| events.push(e));
        assert_eq!(
            records(&events).len(),
            1,
            "record ending in the gap reported by gap()"
        );
        assert!(stream.is_resyncing());
        push_all(&mut stream, &data[700..1000], &mut events);
        assert!(stream.is_resyncing(), "one plausible header is not enough");
        push_all(&mut stream, &data[1000..], &mut events);
        assert!(!stream.is_resyncing());
        // The record at 0 ends in the gap and is still reported; the header at 915 is a
        // candidate, confirmed by the one at 1220.
        assert!(notes(&events).is_empty());
        let starts: Vec<u64> = records(&events).iter().map(|r| r.start).collect();
        assert_eq!(starts, vec![0, 915, 1220, 1525]);
        assert!(!stream.is_failed());
        assert!(stream.buffered_bytes() <= RECORD_HEADER_LEN);

        // A gap before the very first byte (capture started mid-stream).
        let mut stream = TlsStream::with_offset(TlsLimits::default(), 5000);
        let mut events = Vec::new();
        stream.gap(200, &mut |e| events.push(e));
        push_all(&mut stream, &data[200..], &mut events);
        let starts: Vec<u64> = records(&events).iter().map(|r| r.start).collect();
        assert_eq!(starts, vec![5305, 5610, 5915, 6220, 6525]);
    }

    #[test]
    fn gap_followed_by_non_tls_gives_up() {
        let mut stream = TlsStream::new(TlsLimits::default());
        let mut events = Vec::new();
        push_all(&mut stream, &record(23, &[0; 10])[..8], &mut events);
        stream.gap(100, &mut |e| events.push(e));
        push_all(&mut stream, &vec![0u8; RESYNC_SCAN_LIMIT + 10], &mut events);
        assert_eq!(
            notes(&events),
            vec![(TlsNoteKind::NotTls, 108 + RESYNC_SCAN_LIMIT as u64)]
        );
        assert!(stream.is_failed());
    }

    #[test]
    fn gap_inside_handshake_stops_handshake_decoding() {
        let data = [
            record(22, &hs(1, &client_hello_body())),
            record(22, &hs(16, &[1; 10])),
        ]
        .concat();
        let mut stream = TlsStream::new(TlsLimits::default());
        let mut events = Vec::new();
        push_all(&mut stream, &data[..15], &mut events);
        stream.gap(20, &mut |e| events.push(e));
        push_all(&mut stream, &data[35..], &mut events);
        assert!(notes(&events).is_empty());
        assert_eq!(
            summaries(&events),
            vec!["Handshake (not decoded)", "Handshake (not decoded)"]
        );
        assert_eq!(stream.buffered_bytes(), 0);
    }

    #[test]
    fn record_offsets_follow_the_base_offset() {
        let mut stream = TlsStream::with_offset(TlsLimits::default(), 1000);
        let mut events = Vec::new();
        push_all(&mut stream, &record(23, &[0; 7]), &mut events);
        let r = &records(&events)[0];
        assert_eq!((r.start, r.end, r.length), (1000, 1012, 7));
        assert_eq!(stream.offset(), 1012);
    }

    #[test]
    fn hand_built_certificate_yields_cn_and_dns_names() {
        let cert = test_certificate();
        assert!(cert.len() > 256, "exercises two-byte lengths");
        assert_eq!(
            certificate_subjects(&cert),
            vec!["jabber.ccc.de".to_string(), "xmpp.ccc.de".to_string()]
        );
        // Subject with only a CN (BMPString), no extensions block parsed differently.
        let bmp: Vec<u8> = "xmpp.example"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        let cert = certificate_with(name(0x1E, &bmp));
        assert_eq!(
            certificate_subjects(&cert),
            vec!["xmpp.example", "jabber.ccc.de", "xmpp.ccc.de"]
        );
        // Control and bidi characters are escaped.
        let cert = certificate_with(name(0x0C, "evil\u{202E}moc\n".as_bytes()));
        assert_eq!(
            certificate_subjects(&cert)[0],
            "evil\\u{202e}moc\\u{a}".to_string()
        );
    }

    #[test]
    fn truncated_der_certificate_never_panics() {
        let cert = test_certificate();
        for len in 0..cert.len() {
            assert!(
                certificate_subjects(&cert[..len]).is_empty(),
                "prefix {len}"
            );
            // The same truncated DER inside a well-framed Certificate message.
            let events = run(&record(22, &hs(11, &certificate_body(&cert[..len]))));
            assert!(notes(&events).is_empty());
            assert!(
                records(&events)[0].handshakes[0]
                    .certificate_subjects
                    .is_empty()
            );
        }
        // Truncated inside the handshake framing itself: malformed, no panic.
        let body = certificate_body(&cert);
        for len in 0..body.len() {
            let events = run(&record(22, &hs(11, &body[..len])));
            assert_eq!(records(&events).len(), 1);
        }
    }

    #[test]
    fn names_and_classification() {
        assert!(looks_like_tls(&[22, 3, 1, 0, 200]));
        assert!(looks_like_tls(&[23, 3, 4]));
        assert!(!looks_like_tls(&[22, 3]));
        assert!(!looks_like_tls(b"<?xml"));
        assert!(!looks_like_tls(&[25, 3, 3]));
        assert!(!looks_like_tls(&[22, 3, 5]));
        assert_eq!(content_type_name(22), "Handshake");
        assert_eq!(content_type_name(23), "Application Data");
        assert_eq!(content_type_name(20), "Change Cipher Spec");
        assert_eq!(content_type_name(99), "Unknown");
        assert_eq!(handshake_name(1), "Client Hello");
        assert_eq!(handshake_name(14), "Server Hello Done");
        assert_eq!(handshake_name(200), "Unknown Handshake Message");
        assert_eq!(version_name(0x0303), "TLSv1.2");
        assert_eq!(version_name(0x0304), "TLSv1.3");
        assert_eq!(version_name(0x0301), "TLSv1");
        assert_eq!(version_name(0x7F1C), "TLSv1.3 (draft 28)");
        assert_eq!(version_name(0x1A1A), "Reserved (GREASE) 0x1A1A");
        assert_eq!(version_name(0x0999), "0x0999");
        assert_eq!(cipher_suite_name(0x1301), "TLS_AES_128_GCM_SHA256");
        assert_eq!(cipher_suite_name(0x1303), "TLS_CHACHA20_POLY1305_SHA256");
        assert_eq!(
            cipher_suite_name(0xC02F),
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        );
        assert_eq!(
            cipher_suite_name(0xC02C),
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
        );
        assert_eq!(
            cipher_suite_name(0xCCA8),
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
        );
        assert_eq!(cipher_suite_name(0x002F), "TLS_RSA_WITH_AES_128_CBC_SHA");
        assert_eq!(cipher_suite_name(0xC0FF), "0xC0FF");
        assert_eq!(cipher_suite_name(0x3A3A), "Reserved (GREASE) 0x3A3A");
        assert_eq!(alert_description_name(48), "Unknown CA");
        assert_eq!(alert_description_name(201), "Unknown (201)");
    }

    // ----- property tests -----

    #[derive(Debug, Clone)]
    enum Op {
        Push(Vec<u8>),
        Gap(u64),
        SetEncrypted,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Op::Push),
            1 => (0u64..40_000).prop_map(Op::Gap),
            1 => Just(Op::SetEncrypted),
        ]
    }

    /// Applies ops, checking the memory bound and the record invariants after each.
    fn apply(limits: TlsLimits, ops: &[Op]) {
        let mut stream = TlsStream::new(limits);
        let mut events = Vec::new();
        for op in ops {
            match op {
                Op::Push(bytes) => stream.push(bytes, &mut |e| events.push(e)),
                Op::Gap(n) => stream.gap(*n, &mut |e| events.push(e)),
                Op::SetEncrypted => stream.set_encrypted(),
            }
            assert!(stream.buffered_bytes() <= limits.max_handshake_bytes + 16);
        }
        for r in records(&events) {
            assert_eq!(r.end, r.start + 5 + u64::from(r.length));
            assert!(!record_summary(&r).is_empty());
            for h in &r.handshakes {
                assert!(h.certificate_subjects.len() <= MAX_SUBJECTS);
            }
        }
    }

    /// A stream of well-formed records with arbitrary types and payloads.
    fn record_stream() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
        proptest::collection::vec(
            (20u8..=24, proptest::collection::vec(any::<u8>(), 0..200)),
            0..20,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes_never_panic(ops in proptest::collection::vec(op(), 0..20)) {
            apply(TlsLimits { max_handshake_bytes: 256 }, &ops);
        }

        #[test]
        fn tls_looking_random_bytes_never_panic(
            chunks in proptest::collection::vec(
                (20u8..=24, 0u8..=4, proptest::collection::vec(any::<u8>(), 0..120)),
                0..30,
            ),
        ) {
            // Every chunk starts with a plausible header prefix so parsing goes deep.
            let ops: Vec<Op> = chunks
                .into_iter()
                .map(|(t, minor, rest)| Op::Push([vec![t, 3, minor], rest].concat()))
                .collect();
            apply(TlsLimits { max_handshake_bytes: 128 }, &ops);
        }

        #[test]
        fn mutated_handshake_never_panics(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            server in any::<bool>(),
        ) {
            let mut data = if server { server_flight() } else { client_flight() };
            for (i, b) in flips {
                let at = i.index(data.len());
                data[at] = b;
            }
            apply(TlsLimits::default(), &[Op::Push(data)]);
        }

        #[test]
        fn random_splits_match_one_push(
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let data = [client_flight(), server_flight()].concat();
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
            cuts.sort_unstable();
            prop_assert_eq!(run_split(&data, &cuts), run(&data));
        }

        #[test]
        fn well_formed_records_are_framed_exactly(
            recs in record_stream(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let data: Vec<u8> = recs.iter().flat_map(|(t, p)| record(*t, p)).collect();
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
            cuts.sort_unstable();
            let events = run_split(&data, &cuts);
            prop_assert!(!notes(&events).iter().any(|(k, _)| *k == TlsNoteKind::NotTls));
            let got: Vec<(u8, u16)> = records(&events).iter().map(|r| (r.content_type, r.length)).collect();
            let want: Vec<(u8, u16)> = recs.iter().map(|(t, p)| (*t, p.len() as u16)).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn resync_after_gap_finds_real_records(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 4..10),
            gap_at in any::<prop::sample::Index>(),
            gap_len in 1usize..4000,
        ) {
            let data: Vec<u8> = payloads.iter().flat_map(|p| record(23, p)).collect();
            let start = gap_at.index(data.len());
            let end = (start + gap_len).min(data.len());
            let mut stream = TlsStream::new(TlsLimits::default());
            let mut events = Vec::new();
            stream.push(&data[..start], &mut |e| events.push(e));
            stream.gap((end - start) as u64, &mut |e| events.push(e));
            stream.push(&data[end..], &mut |e| events.push(e));
            // Every record reported is a real one (random payloads are not trusted to lack
            // plausible headers, but a chained false pair must not occur in these sizes).
            let mut real = std::collections::HashSet::new();
            let mut at = 0u64;
            for p in &payloads {
                real.insert((at, p.len() as u16));
                at += 5 + p.len() as u64;
            }
            for r in records(&events) {
                prop_assert!(real.contains(&(r.start, r.length)), "{:?}", r);
            }
        }

        #[test]
        fn random_der_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let subjects = certificate_subjects(&bytes);
            prop_assert!(subjects.len() <= MAX_SUBJECTS);
        }

        #[test]
        fn mutated_certificate_never_panics(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        ) {
            let mut cert = test_certificate();
            for (i, b) in flips {
                let at = i.index(cert.len());
                cert[at] = b;
            }
            prop_assert!(certificate_subjects(&cert).len() <= MAX_SUBJECTS);
        }
    }
}

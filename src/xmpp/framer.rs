//! Resumable framer for one direction of an XMPP XML stream.
//!
//! An XMPP session is one XML document per direction whose root,
//! `<stream:stream>`, stays open for the whole TCP connection (RFC 6120 §4.2,
//! §4.3); its children are the stream features, SASL/TLS negotiation elements
//! and the stanzas. quick-xml's reader cannot resume once its input runs out,
//! so this module first cuts the in-order bytes of a TCP direction, arriving in
//! arbitrary chunks, into complete *top-level units* with a small byte
//! scanner; each complete unit is later parsed on its own.
//!
//! # What a unit is
//!
//! At the top level (outside any unit) the framer recognises:
//!
//! * the XML declaration `<?xml …?>` (XML 1.0 §2.8) → [`UnitKind::XmlDecl`];
//!   other processing instructions (XML 1.0 §2.6, forbidden by RFC 6120
//!   §11.1) → [`UnitKind::Pi`];
//! * the open tag of the stream root, i.e. a start tag whose local name is
//!   `stream` and which is not self-closed (RFC 6120 §4.2) →
//!   [`UnitKind::StreamHeader`], emitted alone as soon as its `>` is seen;
//! * `</stream:stream>` (RFC 6120 §4.4) → [`UnitKind::StreamEnd`];
//! * any other element, with all its children → [`UnitKind::Element`];
//! * comments `<!-- … -->` (XML 1.0 §2.5) → [`UnitKind::Comment`]. RFC 6120
//!   §11.1 says XMPP entities must not send comments; the caller notes them;
//! * whitespace (space, tab, CR, LF; XML 1.0 §2.3 `S`) → [`UnitKind::Whitespace`]
//!   and other character data → [`UnitKind::Text`]. Both are emitted as soon
//!   as they are seen, never buffered, so one run may arrive in several pieces
//!   split at `push()` boundaries. Once a text run has started, whitespace up
//!   to the next `<` belongs to it. A CDATA section at the top level (XML 1.0
//!   §2.7) is character data of the stream root too: it is framed whole and
//!   reported as [`UnitKind::Text`].
//!
//! Restarts after STARTTLS or SASL success (RFC 6120 §5.4.3.3, §6.4.6) send a
//! new declaration and stream header on the same connection; they are framed
//! again like the first ones. Because the stream root is never counted as an
//! open element, an element at depth 1 of the XML document (a child of the
//! root) and an element at depth 0 (a capture that began mid-stream, before
//! any header was seen) are framed the same way: the header only sets the
//! flag returned by [`Framer::header_seen`].
//!
//! # The scanner
//!
//! Inside a unit the framer counts element depth (never a stack of names, so
//! memory stays O(1) apart from the unit buffer) and knows just enough XML to
//! find where the unit ends:
//!
//! * in a tag, `>` ends it only outside quoted attribute values (`'` or `"`,
//!   XML 1.0 §3.1); a `/` right before the `>` makes the element empty;
//! * a comment ends only at `-->` (XML 1.0 §2.5), a CDATA section only at
//!   `]]>` (XML 1.0 §2.7), a processing instruction only at `?>` (§2.6);
//! * content is skipped with `memchr` to the next `<`, tags with `memchr3` to
//!   the next `>`, `'` or `"`, and so on: bytes are not inspected one by one.
//!
//! A unit that lies entirely inside one `push()` is handed out as a sub-slice
//! of the pushed data (zero-copy); only the incomplete tail at the end of a
//! push is copied into an internal buffer, which is reused. Every split of the
//! input yields the same units (kinds, bytes and offsets; whitespace and text
//! runs may come in more pieces) and the same notes.
//!
//! # Errors, limits and resynchronisation
//!
//! Nothing is dropped silently: each problem yields a [`FramerNote`].
//!
//! * [`FramerLimits::max_element_bytes`] and [`FramerLimits::max_depth`] bound
//!   a unit; past either, its bytes are discarded, depth is still counted
//!   without buffering and framing resumes after the unit ends.
//! * `<!DOCTYPE` is malformed: RFC 6120 §11.1 forbids DTDs in XMPP. It is
//!   skipped by resynchronisation and nothing in it is ever expanded.
//! * `<` followed by something that cannot start markup, and a close tag at
//!   the top level other than the stream end, are malformed.
//! * After a malformed construct, a capture gap ([`Framer::gap`]) or an
//!   explicit [`Framer::resync`], the framer skips bytes until `<` followed by
//!   a name start character (XML 1.0 §2.3: an ASCII letter, `_`, `:` or any
//!   non-ASCII byte), by `?xml` or by `/stream:stream`, and reports the skipped
//!   byte count in one [`FramerNoteKind::Resync`] note.
//!
//! The framer never panics on input: it indexes with `get`, uses saturating
//! arithmetic for offsets and contains no `unsafe`.

#![forbid(unsafe_code)]

use memchr::{memchr, memchr2, memchr3};

/// Default for [`FramerLimits::max_element_bytes`]: 1 MiB.
pub const DEFAULT_MAX_ELEMENT_BYTES: usize = 1 << 20;
/// Default for [`FramerLimits::max_depth`].
pub const DEFAULT_MAX_DEPTH: usize = 256;
/// Capacity the unit buffer may keep between units; a larger buffer (left by
/// one big unit) is shrunk back so idle connections stay cheap.
const BUF_KEEP: usize = 4 * 1024;
/// Same for the frame list of a unit.
const FRAMES_KEEP: usize = 16;

/// Named, configurable limits. Hitting one yields a [`FramerNote`], never silence.
#[derive(Debug, Clone, Copy)]
pub struct FramerLimits {
    /// Largest top-level element (or header/decl/comment) buffered, in bytes. Default 1 MiB (1 << 20).
    pub max_element_bytes: usize,
    /// Deepest element nesting inside one top-level element. Default 256.
    /// The top-level element itself is at depth 1.
    pub max_depth: usize,
}

impl Default for FramerLimits {
    fn default() -> Self {
        Self {
            max_element_bytes: DEFAULT_MAX_ELEMENT_BYTES,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

/// What a [`Unit`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    /// `<?xml ...?>` at top level (XML 1.0 §2.8).
    XmlDecl,
    /// The open tag of the stream root (RFC 6120 §4.2): a start tag at top
    /// level whose local name is `stream` (normally `stream:stream`), not
    /// self-closed. Emitted alone (just the open tag bytes).
    StreamHeader,
    /// One complete top-level element with all its children: a child of the
    /// stream root or, before any header was seen (capture started
    /// mid-stream), an element at depth 0.
    Element,
    /// Whitespace-only bytes at top level (space, `\t`, `\r`, `\n`). Not
    /// buffered: emitted as soon as seen, so a run may come in several pieces
    /// split at `push()` boundaries.
    Whitespace,
    /// `</stream:stream>`: a close tag at top level whose local name is
    /// `stream` (RFC 6120 §4.4).
    StreamEnd,
    /// `<!-- ... -->` at top level (XML 1.0 §2.5; forbidden by RFC 6120 §11.1).
    Comment,
    /// A processing instruction other than the XML declaration at top level.
    Pi,
    /// Non-whitespace character data at top level (illegal in XMPP; the
    /// caller notes it). Emitted unbuffered like [`UnitKind::Whitespace`],
    /// except a top-level CDATA section, which is framed whole.
    Text,
}

/// What a [`FramerNote`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramerNoteKind {
    /// A unit exceeded [`FramerLimits::max_element_bytes`]: its bytes are
    /// dropped, the framer keeps tracking depth without buffering and resumes
    /// after that element ends. Reported when the limit is crossed:
    /// `start` is the unit's start, `end` is `start + max_element_bytes + 1`.
    ElementTooLarge,
    /// Nesting exceeded [`FramerLimits::max_depth`]: same treatment as
    /// `ElementTooLarge`. `end` is one past the `>` of the start tag that was
    /// too deep.
    DepthExceeded,
    /// Bytes that cannot be XML here: `<` followed by something that cannot
    /// start markup, a close tag at top level that is not the stream end,
    /// `<!DOCTYPE` (RFC 6120 §11.1 forbids DTDs), an unknown `<!` construct.
    /// The range covers the abandoned unit up to the offending byte; except
    /// for a stray close tag (skipped exactly), the framer then resynchronises
    /// from the offending byte.
    Malformed,
    /// Bytes skipped while looking for the next top-level element (after
    /// `gap()`/`resync()` or `Malformed`); reported once per resync when sync
    /// is found again, if at least one byte was skipped. Also reported by
    /// `gap()` for a partial unit (or skipped bytes) lost at the gap.
    Resync,
}

/// A problem found in the stream, with the stream offsets it concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramerNote {
    pub kind: FramerNoteKind,
    /// Stream offset of the first byte concerned.
    pub start: u64,
    /// Stream offset one past the last byte concerned.
    pub end: u64,
    pub detail: &'static str,
}

/// One top-level unit.
#[derive(Debug)]
pub struct Unit<'a> {
    pub kind: UnitKind,
    /// Exactly the unit's bytes. Zero-copy (a sub-slice of the pushed data)
    /// whenever the whole unit lies in the current push; otherwise from the
    /// framer's internal buffer.
    pub bytes: &'a [u8],
    /// Stream offset (bytes since the framer was created or last reset) of the first byte.
    pub start: u64,
    /// Stream offset one past the last byte.
    pub end: u64,
    /// The frame numbers that carried bytes of this unit, in order, without
    /// consecutive duplicates; the last one is the frame of the current push.
    pub frames: &'a [u64],
}

/// What the framer hands to the sink.
#[derive(Debug)]
pub enum FramerEvent<'a> {
    Unit(Unit<'a>),
    Note(FramerNote),
}

const DETAIL_LT: &str = "'<' not followed by a name, '/', '?' or '!'";
const DETAIL_DOCTYPE: &str =
    "<!DOCTYPE: DTDs are forbidden in XMPP (RFC 6120 §11.1); skipped, nothing expanded";
const DETAIL_BANG: &str = "'<!' not followed by '--' (comment) or '[CDATA['";
const DETAIL_CLOSE: &str = "close tag at top level that is not the stream end";
const DETAIL_TOO_LARGE: &str = "unit larger than max_element_bytes; skipped to its end";
const DETAIL_TOO_DEEP: &str = "element nesting deeper than max_depth; skipped to its end";
const DETAIL_SKIPPED: &str = "bytes skipped while resynchronising";
const DETAIL_SKIPPED_GAP: &str = "bytes skipped while resynchronising, up to a capture gap";
const DETAIL_PARTIAL_GAP: &str = "partial unit discarded at a capture gap";

/// A fixed byte sequence matched one byte at a time after `<` or `<!`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pat {
    /// `<!` + `--`
    Comment,
    /// `<!` + `[CDATA[`
    Cdata,
    /// `<?` + `xml` (only while resynchronising)
    XmlDecl,
    /// `</` + `stream:stream` (only while resynchronising)
    StreamEnd,
}

impl Pat {
    fn bytes(self) -> &'static [u8] {
        match self {
            Pat::Comment => b"--",
            Pat::Cdata => b"[CDATA[",
            Pat::XmlDecl => b"xml",
            Pat::StreamEnd => b"stream:stream",
        }
    }
}

/// Scanner state. Everything but `Top` and `Resync` is inside a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// Top level, in sync.
    Top,
    /// Skipping to the next plausible top-level `<`.
    Resync,
    /// Just after `<`.
    Lt,
    /// Just after `<!`.
    Bang,
    /// Matching `pat`, `n` bytes of it matched.
    Pat { pat: Pat, n: u8 },
    /// In a start tag, outside quotes.
    STag,
    /// In a quoted attribute value; the byte is the closing quote.
    SQuote(u8),
    /// In a close tag.
    ETag,
    /// In a comment; the number (≤ 2) of `-` just before.
    Comment(u8),
    /// In a CDATA section; the number (≤ 2) of `]` just before.
    Cdata(u8),
    /// In a processing instruction; whether the previous byte was `?`.
    Pi(bool),
    /// In element content (depth ≥ 1), outside markup.
    Content,
}

type Sink<'s> = &'s mut dyn FnMut(FramerEvent<'_>);

/// Where a caller that read the start of a unit itself stopped when its
/// input ran out (see [`Framer::resume`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Just after a `<`.
    Lt,
    /// In a start tag, outside quoted values.
    StartTag,
    /// In an attribute value closed by this quote.
    Quote(u8),
    /// In a close tag (after `</`).
    CloseTag,
    /// In element content, outside markup (also inside a reference).
    Content,
}

/// The resumable framer; see the [module documentation](self).
pub struct Framer {
    limits: FramerLimits,
    st: St,
    /// Stream offset of the next byte expected (during `push`: of `data[0]`).
    offset: u64,
    header_seen: bool,
    /// A top-level text run is open: whitespace continues it.
    in_text: bool,
    resyncing: bool,
    resync_start: u64,
    /// A unit (or, while resyncing, a candidate `<…`) is open.
    unit_open: bool,
    unit_start: u64,
    /// Open elements inside the unit.
    depth: usize,
    /// The unit broke a limit: keep scanning, keep nothing.
    dropping: bool,
    /// For a dropped unit still in its first tag: whether that tag is named `stream`.
    first_is_stream: bool,
    /// Index in the current push's data where the unit began, if it began in
    /// this push; otherwise its earlier bytes are in `buf`.
    ub: Option<usize>,
    /// Last byte of the previous push (the byte before `data[0]`).
    last_byte: u8,
    buf: Vec<u8>,
    frames: Vec<u64>,
}

impl std::fmt::Debug for Framer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framer")
            .field("limits", &self.limits)
            .field("offset", &self.offset)
            .field("header_seen", &self.header_seen)
            .field("resyncing", &self.resyncing)
            .field("in_unit", &self.in_unit())
            .field("pending_bytes", &self.pending_bytes())
            .finish_non_exhaustive()
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// `0x01` in every byte of a word.
const LO: u64 = u64::from_ne_bytes([1; 8]);
/// `0x80` in every byte of a word.
const HI: u64 = LO << 7;
/// How far [`find1`] and [`find3`] look word by word before handing over
/// to `memchr`: tags, values and the text between tags are usually short,
/// where a call costs more than the search.
const SHORT: usize = 32;

/// The high bit of each byte of `w` equal to `c`, possibly also of bytes
/// after such a byte (borrows run upwards): whether any is set, and where
/// the lowest one is, are exact.
fn word_eq(w: u64, c: u8) -> u64 {
    let x = w ^ (LO * u64::from(c));
    x.wrapping_sub(LO) & !x & HI
}

/// The word at `hay[k..k + 8]`, little-endian.
fn word(hay: &[u8], k: usize) -> Option<u64> {
    let w: [u8; 8] = hay.get(k..k.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(w))
}

/// `memchr(a, hay)`, word by word over the first bytes.
pub(super) fn find1(a: u8, hay: &[u8]) -> Option<usize> {
    let mut k = 0;
    while k < SHORT {
        let Some(w) = word(hay, k) else { break };
        let hits = word_eq(w, a);
        if hits != 0 {
            return Some(k + (hits.trailing_zeros() / 8) as usize);
        }
        k += 8;
    }
    memchr(a, hay.get(k..)?).map(|p| k + p)
}

/// `memchr2(a, b, hay)`, word by word over the first bytes.
pub(super) fn find2(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    let mut k = 0;
    while k < SHORT {
        let Some(w) = word(hay, k) else { break };
        let hits = word_eq(w, a) | word_eq(w, b);
        if hits != 0 {
            return Some(k + (hits.trailing_zeros() / 8) as usize);
        }
        k += 8;
    }
    memchr2(a, b, hay.get(k..)?).map(|p| k + p)
}

/// `memchr3(a, b, c, hay)`, word by word over the first bytes.
fn find3(a: u8, b: u8, c: u8, hay: &[u8]) -> Option<usize> {
    let mut k = 0;
    while k < SHORT {
        let Some(w) = word(hay, k) else { break };
        let hits = word_eq(w, a) | word_eq(w, b) | word_eq(w, c);
        if hits != 0 {
            return Some(k + (hits.trailing_zeros() / 8) as usize);
        }
        k += 8;
    }
    memchr3(a, b, c, hay.get(k..)?).map(|p| k + p)
}

/// XML 1.0 §2.3 `NameStartChar`, approximated on bytes: every non-ASCII byte
/// is accepted (it may start a multi-byte name character).
fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80
}

fn at(base: u64, i: usize) -> u64 {
    base.saturating_add(i as u64)
}

/// Number (≤ 2) of trailing `ch` at the end of `prev_run` + `seg`, where
/// `prev_run` is that count for the bytes before `seg`.
fn trailing(prev_run: u8, seg: &[u8], ch: u8) -> u8 {
    let mut n = 0u8;
    for &c in seg.iter().rev() {
        if c != ch {
            return n;
        }
        n += 1;
        if n >= 2 {
            return 2;
        }
    }
    n.saturating_add(prev_run).min(2)
}

/// Whether the name at the start of `name` (up to whitespace, `/`, `>`, a
/// quote or `=`) has the local part `stream`; false if the name does not end.
fn local_name_is_stream<'a>(name: impl Iterator<Item = &'a u8>) -> bool {
    const LOCAL: &[u8] = b"stream";
    let mut n = 0usize;
    let mut ok = true;
    for &c in name {
        if is_ws(c) || matches!(c, b'/' | b'>' | b'\'' | b'"' | b'=') {
            return ok && n == LOCAL.len();
        }
        if c == b':' {
            n = 0;
            ok = true;
        } else if ok && LOCAL.get(n) == Some(&c) {
            n += 1;
        } else {
            ok = false;
        }
    }
    false
}

/// `<?xml` followed by whitespace or `?` (XML 1.0 §2.8; `<?xml-stylesheet` is a PI).
fn is_xml_decl<'a>(mut unit: impl Iterator<Item = &'a u8>) -> bool {
    b"<?xml".iter().all(|want| unit.next() == Some(want))
        && unit.next().is_some_and(|&c| is_ws(c) || c == b'?')
}

fn emit_loose(kind: UnitKind, bytes: &[u8], start: u64, frame: u64, sink: Sink<'_>) {
    if bytes.is_empty() {
        return;
    }
    sink(FramerEvent::Unit(Unit {
        kind,
        bytes,
        start,
        end: start.saturating_add(bytes.len() as u64),
        frames: std::slice::from_ref(&frame),
    }));
}

impl Framer {
    #[must_use]
    pub fn new(limits: FramerLimits) -> Self {
        Self {
            limits,
            st: St::Top,
            offset: 0,
            header_seen: false,
            in_text: false,
            resyncing: false,
            resync_start: 0,
            unit_open: false,
            unit_start: 0,
            depth: 0,
            dropping: false,
            first_is_stream: false,
            ub: None,
            last_byte: 0,
            buf: Vec::new(),
            frames: Vec::new(),
        }
    }

    /// The limits this framer was created with.
    #[must_use]
    pub fn limits(&self) -> FramerLimits {
        self.limits
    }

    /// Feed the next in-order bytes; `frame` is the capture frame number that carried them.
    pub fn push(&mut self, data: &[u8], frame: u64, sink: &mut dyn FnMut(FramerEvent<'_>)) {
        self.push_inner(data, frame, sink, false);
    }

    /// [`Framer::push`], stopping as soon as the framer is back between
    /// units ([`Framer::at_top`]) after having read something: returns how
    /// many bytes of `data` it took; the caller hands over the rest (or
    /// frames it itself). Stopping there is one more split of the input,
    /// which changes nothing the framer reports.
    pub fn push_until_top(
        &mut self,
        data: &[u8],
        frame: u64,
        sink: &mut dyn FnMut(FramerEvent<'_>),
    ) -> usize {
        self.push_inner(data, frame, sink, true)
    }

    fn push_inner(
        &mut self,
        data: &[u8],
        frame: u64,
        sink: &mut dyn FnMut(FramerEvent<'_>),
        stop_at_top: bool,
    ) -> usize {
        let Some(&last) = data.last() else {
            return 0;
        };
        let base = self.offset;
        self.ub = None;
        if self.unit_open && !self.dropping && self.frames.last() != Some(&frame) {
            self.frames.push(frame);
        }
        let mut i = 0usize;
        while let Some(&b) = data.get(i) {
            i = self.step(data, i, b, base, frame, sink);
            if stop_at_top
                && i < data.len()
                && self.at_top()
                && let Some(&prev) = i.checked_sub(1).and_then(|p| data.get(p))
            {
                self.offset = at(base, i);
                self.last_byte = prev;
                return i;
            }
        }
        self.end_of_push(data, base, sink);
        self.offset = at(base, data.len());
        self.last_byte = last;
        data.len()
    }

    /// `len` bytes of the stream are missing (lost packet, snaplen
    /// truncation): drop any partial unit, reporting it in a
    /// [`FramerNoteKind::Resync`] note (as are bytes already skipped by a
    /// resync in progress), advance the stream offset by `len` and enter
    /// resync mode.
    pub fn gap(&mut self, len: u64, sink: &mut dyn FnMut(FramerEvent<'_>)) {
        let here = self.offset;
        if self.resyncing {
            if here > self.resync_start {
                sink(FramerEvent::Note(FramerNote {
                    kind: FramerNoteKind::Resync,
                    start: self.resync_start,
                    end: here,
                    detail: DETAIL_SKIPPED_GAP,
                }));
            }
        } else if self.unit_open {
            sink(FramerEvent::Note(FramerNote {
                kind: FramerNoteKind::Resync,
                start: self.unit_start,
                end: here,
                detail: DETAIL_PARTIAL_GAP,
            }));
        }
        self.close_unit();
        self.offset = here.saturating_add(len);
        self.enter_resync(self.offset);
    }

    /// Enter resync mode without a gap (used when a capture starts mid-stream
    /// and the first bytes may be mid-element). A partial unit, if any, is
    /// dropped and counted in the [`FramerNoteKind::Resync`] note reported
    /// when sync is found.
    pub fn resync(&mut self) {
        if self.resyncing {
            return;
        }
        let from = if self.unit_open {
            self.unit_start
        } else {
            self.offset
        };
        self.close_unit();
        self.enter_resync(from);
    }

    /// Forget everything: offsets restart at 0, no header seen, in sync.
    pub fn reset(&mut self) {
        self.close_unit();
        *self = Self {
            buf: std::mem::take(&mut self.buf),
            frames: std::mem::take(&mut self.frames),
            ..Self::new(self.limits)
        };
    }

    /// Bytes currently buffered for a partial unit (for memory accounting and
    /// end-of-capture notes). At most `max_element_bytes`, or 16 while
    /// checking a resync candidate.
    #[must_use]
    pub fn pending_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Stream offset of the next byte expected.
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// True when a partial unit is open (called at end of capture to report
    /// an incomplete element), including one being skipped for a limit.
    #[must_use]
    pub fn in_unit(&self) -> bool {
        self.unit_open && !self.resyncing
    }

    /// Stream offset where the open partial unit began, if any.
    #[must_use]
    pub fn unit_start(&self) -> Option<u64> {
        self.in_unit().then_some(self.unit_start)
    }

    /// True once a stream header has been framed (RFC 6120 §4.2).
    #[must_use]
    pub fn header_seen(&self) -> bool {
        self.header_seen
    }

    /// At the top level between units: no partial unit, text run or resync
    /// pending. A caller may then cut complete elements itself (see
    /// [`super::lite::frame`]) and account for them with [`Framer::skip`].
    #[must_use]
    pub fn at_top(&self) -> bool {
        self.st == St::Top && !self.unit_open && !self.in_text && !self.resyncing
    }

    /// `data`, the stream bytes from [`Framer::offset`] on, was framed by the
    /// caller (whole elements and the whitespace between them, cut where the
    /// framer would cut them): only the stream offset moves. Call only when
    /// [`Framer::at_top`].
    pub fn skip(&mut self, data: &[u8]) {
        if let Some(&last) = data.last() {
            self.offset = at(self.offset, data.len());
            self.last_byte = last;
        }
    }

    /// `data`, the stream bytes from [`Framer::offset`] on (the whole rest
    /// of the current push, which carried it in `frame`), is the start of a
    /// unit that the caller read as far as it goes (see
    /// [`super::lite::frame`]): take it as if it had been pushed, without
    /// scanning it again. `depth` is the number of elements the scanner
    /// would count open at its end (an element counts from the `>` of its
    /// start tag to the `>` of its close tag), `state` where it stopped.
    /// Returns false, changing nothing, unless the framer is
    /// [`Framer::at_top`], `data` starts with `<`, is no longer than
    /// `max_element_bytes` and not deeper than `max_depth`, and `state` fits
    /// `depth` (content is inside an element); the caller then pushes
    /// `data` instead.
    pub fn resume(&mut self, data: &[u8], frame: u64, depth: usize, state: Resume) -> bool {
        let st = match state {
            Resume::Lt => St::Lt,
            Resume::StartTag => St::STag,
            Resume::Quote(q) => St::SQuote(q),
            Resume::CloseTag => St::ETag,
            Resume::Content => St::Content,
        };
        let fits = match state {
            Resume::Content | Resume::CloseTag => depth >= 1,
            _ => true,
        };
        let (Some(&b'<'), Some(&last)) = (data.first(), data.last()) else {
            return false;
        };
        if !self.at_top()
            || !fits
            || data.len() > self.limits.max_element_bytes
            || depth > self.limits.max_depth
        {
            return false;
        }
        // As `begin_unit` at the `<`, the scan to the end, and
        // `end_of_push` keeping the tail would leave it.
        self.unit_open = true;
        self.unit_start = self.offset;
        self.depth = depth;
        self.dropping = false;
        self.first_is_stream = false;
        self.ub = None;
        self.buf.clear();
        self.frames.clear();
        self.frames.push(frame);
        self.st = st;
        self.buf_extend(data);
        self.offset = at(self.offset, data.len());
        self.last_byte = last;
        true
    }

    /// True while skipping bytes to find the next top-level element.
    #[must_use]
    pub fn is_resyncing(&self) -> bool {
        self.resyncing
    }

    /// One scanning step at `data[i] == b`; returns the next index.
    fn step(
        &mut self,
        data: &[u8],
        i: usize,
        b: u8,
        base: u64,
        frame: u64,
        sink: Sink<'_>,
    ) -> usize {
        let rest = data.get(i..).unwrap_or_default();
        let end = data.len();
        match self.st {
            St::Top => {
                if b == b'<' {
                    self.in_text = false;
                    self.begin_unit(i, base, frame);
                    self.st = St::Lt;
                    i + 1
                } else if !self.in_text && is_ws(b) {
                    let n = rest.iter().position(|&c| !is_ws(c)).unwrap_or(rest.len());
                    let run = rest.get(..n).unwrap_or_default();
                    emit_loose(UnitKind::Whitespace, run, at(base, i), frame, sink);
                    i + n
                } else {
                    self.in_text = true;
                    let n = memchr(b'<', rest).unwrap_or(rest.len());
                    let run = rest.get(..n).unwrap_or_default();
                    emit_loose(UnitKind::Text, run, at(base, i), frame, sink);
                    i + n
                }
            }
            St::Resync => match memchr(b'<', rest) {
                Some(k) => {
                    let j = i + k;
                    self.begin_unit(j, base, frame);
                    self.st = St::Lt;
                    j + 1
                }
                None => end,
            },
            St::Lt => self.after_lt(data, i, b, base, sink),
            St::Bang => {
                self.check_size(data, i, base, sink);
                match b {
                    b'-' => {
                        self.st = St::Pat {
                            pat: Pat::Comment,
                            n: 1,
                        };
                        i + 1
                    }
                    b'[' => {
                        self.st = St::Pat {
                            pat: Pat::Cdata,
                            n: 1,
                        };
                        i + 1
                    }
                    b'D' => {
                        self.malformed(at(base, i), DETAIL_DOCTYPE, sink);
                        i
                    }
                    _ => {
                        self.malformed(at(base, i), DETAIL_BANG, sink);
                        i
                    }
                }
            }
            St::Pat { pat, n } => {
                self.check_size(data, i, base, sink);
                let want = pat.bytes();
                if want.get(usize::from(n)) == Some(&b) {
                    let n = n.saturating_add(1);
                    self.st = if usize::from(n) < want.len() {
                        St::Pat { pat, n }
                    } else {
                        match pat {
                            Pat::Comment => St::Comment(0),
                            Pat::Cdata => St::Cdata(0),
                            Pat::XmlDecl => {
                                self.synced(sink);
                                St::Pi(false)
                            }
                            Pat::StreamEnd => {
                                self.synced(sink);
                                St::ETag
                            }
                        }
                    };
                    i + 1
                } else {
                    match pat {
                        Pat::Comment | Pat::Cdata => {
                            self.malformed(at(base, i), DETAIL_BANG, sink);
                        }
                        Pat::XmlDecl | Pat::StreamEnd => self.cancel_candidate(),
                    }
                    // Rescan this byte: it may be the next `<`.
                    i
                }
            }
            St::STag => self.scan_tag(data, i, base, sink),
            St::SQuote(q) => match find1(q, rest) {
                None => end,
                Some(k) => self.scan_tag(data, i + k + 1, base, sink),
            },
            St::ETag => match find1(b'>', rest) {
                None => end,
                Some(k) => {
                    let j = i + k;
                    self.check_size(data, j, base, sink);
                    self.close_tag_end(data, j + 1, base, sink);
                    j + 1
                }
            },
            // Both end at a `>` preceded by two terminator bytes (`-->`,
            // `]]>`), which may have arrived in earlier pushes (`run`).
            St::Comment(run) | St::Cdata(run) => {
                let comment = matches!(self.st, St::Comment(_));
                let (term, kind, state): (u8, UnitKind, fn(u8) -> St) = if comment {
                    (b'-', UnitKind::Comment, St::Comment)
                } else {
                    (b']', UnitKind::Text, St::Cdata)
                };
                match memchr(b'>', rest) {
                    None => {
                        self.st = state(trailing(run, rest, term));
                        end
                    }
                    Some(k) => {
                        let j = i + k;
                        self.check_size(data, j, base, sink);
                        if trailing(run, rest.get(..k).unwrap_or_default(), term) >= 2 {
                            self.markup_end(kind, data, j + 1, base, sink);
                        } else {
                            self.st = state(0);
                        }
                        j + 1
                    }
                }
            }
            St::Pi(q) => match memchr(b'>', rest) {
                None => {
                    self.st = St::Pi(rest.last() == Some(&b'?'));
                    end
                }
                Some(k) => {
                    let j = i + k;
                    self.check_size(data, j, base, sink);
                    let question = match k.checked_sub(1) {
                        Some(p) => rest.get(p) == Some(&b'?'),
                        None => q,
                    };
                    if question {
                        let kind = if self.depth == 0
                            && !self.dropping
                            && is_xml_decl(self.unit_iter(data, j + 1))
                        {
                            UnitKind::XmlDecl
                        } else {
                            UnitKind::Pi
                        };
                        self.markup_end(kind, data, j + 1, base, sink);
                    } else {
                        self.st = St::Pi(false);
                    }
                    j + 1
                }
            },
            St::Content => self.content(data, i, base, sink),
        }
    }

    /// In element content from `data[i]`: the run of start and close tags
    /// that makes up most of a unit split across segments, read in one
    /// loop, each transition exactly as [`Framer::step`] makes it (after
    /// `<`, in a start tag, in a close tag), without a `step` per state.
    /// Returns at anything else (`<!`, `<?`, a malformed `<`, the end of
    /// `data`, the end of the unit) with the state set for `step` to go on.
    fn content(&mut self, data: &[u8], mut i: usize, base: u64, sink: Sink<'_>) -> usize {
        loop {
            let rest = data.get(i..).unwrap_or_default();
            let Some(k) = find1(b'<', rest) else {
                self.st = St::Content;
                return data.len();
            };
            // The byte after `<` (as `after_lt`, never while resyncing here).
            let j = i + k + 1;
            let b = match data.get(j) {
                Some(&b) if !self.resyncing && (b == b'/' || is_name_start(b)) => b,
                _ => {
                    self.st = St::Lt;
                    return j;
                }
            };
            self.check_size(data, j, base, sink);
            if b == b'/' {
                self.st = St::ETag;
                let Some(m) = find1(b'>', data.get(j + 1..).unwrap_or_default()) else {
                    return data.len();
                };
                let gt = j + 1 + m;
                self.check_size(data, gt, base, sink);
                self.close_tag_end(data, gt + 1, base, sink);
                i = gt + 1;
            } else {
                self.st = St::STag;
                i = self.scan_tag(data, j + 1, base, sink);
            }
            if self.st != St::Content {
                return i;
            }
        }
    }

    /// Inside a start tag from `data[i]`, outside quotes: skip quoted
    /// attribute values until the `>` that ends the tag (XML 1.0 §3.1).
    /// Returns the next index.
    fn scan_tag(&mut self, data: &[u8], mut i: usize, base: u64, sink: Sink<'_>) -> usize {
        loop {
            let rest = data.get(i..).unwrap_or_default();
            let Some(k) = find3(b'>', b'\'', b'"', rest) else {
                self.st = St::STag;
                return data.len();
            };
            let j = i + k;
            match rest.get(k).copied() {
                Some(b'>') => {
                    self.check_size(data, j, base, sink);
                    // The byte before `>`; quotes are never `/`.
                    let prev = match j.checked_sub(1) {
                        Some(p) => data.get(p).copied(),
                        None => Some(self.last_byte),
                    };
                    self.tag_end(data, j + 1, prev == Some(b'/'), base, sink);
                    return j + 1;
                }
                Some(q) => {
                    let value = data.get(j + 1..).unwrap_or_default();
                    let Some(m) = find1(q, value) else {
                        self.st = St::SQuote(q);
                        return data.len();
                    };
                    i = j + 1 + m + 1;
                }
                None => return data.len(),
            }
        }
    }

    /// The byte after `<`.
    fn after_lt(&mut self, data: &[u8], i: usize, b: u8, base: u64, sink: Sink<'_>) -> usize {
        if self.resyncing {
            // Only a plausible start of a top-level unit ends a resync.
            if is_name_start(b) {
                self.synced(sink);
                self.st = St::STag;
            } else if b == b'/' {
                self.st = St::Pat {
                    pat: Pat::StreamEnd,
                    n: 0,
                };
            } else if b == b'?' {
                self.st = St::Pat {
                    pat: Pat::XmlDecl,
                    n: 0,
                };
            } else {
                self.cancel_candidate();
                return i;
            }
            return i + 1;
        }
        self.check_size(data, i, base, sink);
        self.st = match b {
            b'/' => St::ETag,
            b'?' => St::Pi(false),
            b'!' => St::Bang,
            _ if is_name_start(b) => St::STag,
            _ => {
                self.malformed(at(base, i), DETAIL_LT, sink);
                return i;
            }
        };
        i + 1
    }

    /// The `>` of a start tag; `e` is the index just after it.
    fn tag_end(&mut self, data: &[u8], e: usize, self_closing: bool, base: u64, sink: Sink<'_>) {
        if self.depth == 0 {
            if self_closing {
                self.complete(UnitKind::Element, data, e, base, sink);
                return;
            }
            let is_stream = if self.dropping {
                self.first_is_stream
            } else {
                local_name_is_stream(self.unit_iter(data, e).skip(1))
            };
            if is_stream {
                self.header_seen = true;
                self.complete(UnitKind::StreamHeader, data, e, base, sink);
                return;
            }
            self.depth = 1;
        } else if !self_closing {
            self.depth = self.depth.saturating_add(1);
        }
        if self.depth > self.limits.max_depth && !self.dropping {
            sink(FramerEvent::Note(FramerNote {
                kind: FramerNoteKind::DepthExceeded,
                start: self.unit_start,
                end: at(base, e),
                detail: DETAIL_TOO_DEEP,
            }));
            self.start_dropping();
        }
        self.st = St::Content;
    }

    /// The `>` of a close tag; `e` is the index just after it.
    fn close_tag_end(&mut self, data: &[u8], e: usize, base: u64, sink: Sink<'_>) {
        if self.depth == 0 {
            if self.dropping {
                self.close_unit();
            } else if local_name_is_stream(self.unit_iter(data, e).skip(2)) {
                self.complete(UnitKind::StreamEnd, data, e, base, sink);
            } else {
                // Typically the tail of a stanza we resynchronised into.
                sink(FramerEvent::Note(FramerNote {
                    kind: FramerNoteKind::Malformed,
                    start: self.unit_start,
                    end: at(base, e),
                    detail: DETAIL_CLOSE,
                }));
                self.close_unit();
            }
            return;
        }
        self.depth = self.depth.saturating_sub(1);
        if self.depth == 0 {
            self.complete(UnitKind::Element, data, e, base, sink);
        } else {
            self.st = St::Content;
        }
    }

    /// End of a comment, CDATA section or PI: a unit of its own at top level.
    fn markup_end(&mut self, kind: UnitKind, data: &[u8], e: usize, base: u64, sink: Sink<'_>) {
        if self.depth == 0 {
            self.complete(kind, data, e, base, sink);
        } else {
            self.st = St::Content;
        }
    }

    /// The unit ends at index `e` of `data`: emit it (unless dropped) and
    /// return to the top level.
    fn complete(&mut self, kind: UnitKind, data: &[u8], e: usize, base: u64, sink: Sink<'_>) {
        if !self.dropping {
            if self.ub.is_none() {
                self.buf_extend(data.get(..e).unwrap_or_default());
            }
            let bytes = match self.ub {
                Some(s) => data.get(s..e).unwrap_or_default(),
                None => self.buf.as_slice(),
            };
            sink(FramerEvent::Unit(Unit {
                kind,
                bytes,
                start: self.unit_start,
                end: at(base, e),
                frames: &self.frames,
            }));
        }
        self.close_unit();
    }

    /// The unit's bytes from its start to index `e` of `data`.
    fn unit_iter<'s>(&'s self, data: &'s [u8], e: usize) -> impl Iterator<Item = &'s u8> {
        let (head, tail): (&[u8], &[u8]) = match self.ub {
            Some(s) => (&[], data.get(s..e).unwrap_or_default()),
            None => (&self.buf, data.get(..e).unwrap_or_default()),
        };
        head.iter().chain(tail)
    }

    fn begin_unit(&mut self, i: usize, base: u64, frame: u64) {
        self.unit_open = true;
        self.unit_start = at(base, i);
        self.ub = Some(i);
        self.depth = 0;
        self.dropping = false;
        self.first_is_stream = false;
        self.buf.clear();
        self.frames.clear();
        self.frames.push(frame);
    }

    fn close_unit(&mut self) {
        self.unit_open = false;
        self.st = St::Top;
        self.in_text = false;
        self.depth = 0;
        self.dropping = false;
        self.ub = None;
        self.release_buffers();
    }

    fn release_buffers(&mut self) {
        self.buf.clear();
        self.frames.clear();
        if self.buf.capacity() > BUF_KEEP {
            self.buf.shrink_to(BUF_KEEP);
        }
        if self.frames.capacity() > FRAMES_KEEP {
            self.frames.shrink_to(FRAMES_KEEP);
        }
    }

    fn start_dropping(&mut self) {
        self.dropping = true;
        self.ub = None;
        self.release_buffers();
    }

    fn enter_resync(&mut self, from: u64) {
        self.resyncing = true;
        self.resync_start = from;
        self.st = St::Resync;
        self.in_text = false;
    }

    /// A resync candidate `<…` turned out implausible: keep skipping.
    fn cancel_candidate(&mut self) {
        self.close_unit();
        self.st = St::Resync;
    }

    /// The open candidate is a plausible unit start: report what was skipped.
    fn synced(&mut self, sink: Sink<'_>) {
        if self.unit_start > self.resync_start {
            sink(FramerEvent::Note(FramerNote {
                kind: FramerNoteKind::Resync,
                start: self.resync_start,
                end: self.unit_start,
                detail: DETAIL_SKIPPED,
            }));
        }
        self.resyncing = false;
    }

    /// Abandon the unit at stream offset `p` and resynchronise from there.
    fn malformed(&mut self, p: u64, detail: &'static str, sink: Sink<'_>) {
        sink(FramerEvent::Note(FramerNote {
            kind: FramerNoteKind::Malformed,
            start: self.unit_start,
            end: p,
            detail,
        }));
        self.close_unit();
        self.enter_resync(p);
    }

    /// Called before handling the byte `data[j]` inside a unit: if that byte
    /// is past the size limit, the unit is too large. Checking at every
    /// decision point (and at the end of each push) makes the outcome
    /// independent of how the input was split.
    fn check_size(&mut self, data: &[u8], j: usize, base: u64, sink: Sink<'_>) {
        if self.dropping || self.resyncing || !self.unit_open {
            return;
        }
        let limit = self
            .unit_start
            .saturating_add(self.limits.max_element_bytes as u64);
        if at(base, j) >= limit {
            self.overflow(data, j, sink);
        }
    }

    /// The unit crossed `max_element_bytes`; `upto` is how far into `data`
    /// it has been read.
    fn overflow(&mut self, data: &[u8], upto: usize, sink: Sink<'_>) {
        let max = self.limits.max_element_bytes;
        if self.depth == 0 && matches!(self.st, St::STag | St::SQuote(_)) {
            // Still in the first tag: remember whether it opens a stream, so
            // a huge stream header ends at its `>` instead of swallowing the
            // stream. Only the first `max` bytes count, whatever the split.
            self.first_is_stream =
                local_name_is_stream(self.unit_iter(data, upto).take(max).skip(1));
        }
        sink(FramerEvent::Note(FramerNote {
            kind: FramerNoteKind::ElementTooLarge,
            start: self.unit_start,
            end: self.unit_start.saturating_add(max as u64).saturating_add(1),
            detail: DETAIL_TOO_LARGE,
        }));
        self.start_dropping();
    }

    /// Keep the incomplete tail of an open unit for the next push.
    fn end_of_push(&mut self, data: &[u8], base: u64, sink: Sink<'_>) {
        if !self.unit_open || self.dropping {
            return;
        }
        if !self.resyncing {
            let read = at(base, data.len()).saturating_sub(self.unit_start);
            if read > self.limits.max_element_bytes as u64 {
                self.overflow(data, data.len(), sink);
                return;
            }
        }
        let tail = data.get(self.ub.unwrap_or(0)..).unwrap_or_default();
        self.buf_extend(tail);
    }

    /// Append to the unit buffer without letting its capacity grow far past
    /// `max_element_bytes` (plain doubling could reach twice the limit).
    fn buf_extend(&mut self, bytes: &[u8]) {
        let need = self.buf.len().saturating_add(bytes.len());
        if need > self.buf.capacity() {
            let target = self
                .buf
                .capacity()
                .saturating_mul(2)
                .max(need)
                .min(self.limits.max_element_bytes.max(need))
                .max(64);
            self.buf
                .reserve_exact(target.saturating_sub(self.buf.len()));
        }
        self.buf.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An owned event, for comparisons.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Ev {
        Unit {
            kind: UnitKind,
            bytes: Vec<u8>,
            start: u64,
            end: u64,
        },
        Note(FramerNote),
    }

    /// One input operation.
    #[derive(Debug, Clone)]
    enum Op {
        Data(Vec<u8>),
        Gap(u64),
        Resync,
    }

    fn kind(ev: &Ev) -> Option<UnitKind> {
        match ev {
            Ev::Unit { kind, .. } => Some(*kind),
            Ev::Note(_) => None,
        }
    }

    fn note_kinds(evs: &[Ev]) -> Vec<FramerNoteKind> {
        evs.iter()
            .filter_map(|e| match e {
                Ev::Note(n) => Some(n.kind),
                Ev::Unit { .. } => None,
            })
            .collect()
    }

    fn units(evs: &[Ev]) -> Vec<(UnitKind, &[u8])> {
        evs.iter()
            .filter_map(|e| match e {
                Ev::Unit { kind, bytes, .. } => Some((*kind, bytes.as_slice())),
                Ev::Note(_) => None,
            })
            .collect()
    }

    /// Merge whitespace/text pieces that continue each other (they may be cut
    /// at push boundaries).
    fn coalesce(evs: Vec<Ev>) -> Vec<Ev> {
        let mut out: Vec<Ev> = Vec::new();
        for ev in evs {
            if let (
                Some(Ev::Unit {
                    kind: pk,
                    bytes: pb,
                    end: pe,
                    ..
                }),
                Ev::Unit {
                    kind,
                    bytes,
                    start,
                    end,
                },
            ) = (out.last_mut(), &ev)
                && *pk == *kind
                && matches!(kind, UnitKind::Whitespace | UnitKind::Text)
                && *pe == *start
            {
                pb.extend_from_slice(bytes);
                *pe = *end;
                continue;
            }
            out.push(ev);
        }
        out
    }

    /// Runs `ops`, pushing each data op cut at the given relative points
    /// (`cuts[k]` for the k-th data op). Checks, on every event, the
    /// invariants that do not depend on the split: bytes match the stream at
    /// the unit's offsets, frames are exactly the pushes overlapping the unit,
    /// zero-copy when the unit lies in the current push, pending bytes bounded.
    fn run_ops(limits: FramerLimits, ops: &[Op], cuts: &[Vec<usize>]) -> Vec<Ev> {
        let mut f = Framer::new(limits);
        let mut evs = Vec::new();
        // The stream as the framer numbers it (gaps filled with zeros) and,
        // per push, (frame, start offset, end offset).
        let mut stream: Vec<u8> = Vec::new();
        let mut pushes: Vec<(u64, u64, u64)> = Vec::new();
        let mut data_k = 0usize;
        let mut frame = 0u64;
        for op in ops {
            match op {
                Op::Data(d) => {
                    let mut pts: Vec<usize> = cuts
                        .get(data_k)
                        .map(|c| c.iter().map(|&x| x % (d.len() + 1)).collect())
                        .unwrap_or_default();
                    data_k += 1;
                    pts.push(0);
                    pts.push(d.len());
                    pts.sort_unstable();
                    pts.dedup();
                    for w in pts.windows(2) {
                        let chunk = &d[w[0]..w[1]];
                        frame += 1;
                        let start = f.offset();
                        stream.extend_from_slice(chunk);
                        pushes.push((frame, start, start + chunk.len() as u64));
                        let range = chunk.as_ptr_range();
                        f.push(chunk, frame, &mut |ev| match ev {
                            FramerEvent::Unit(u) => {
                                assert_eq!(u.end - u.start, u.bytes.len() as u64);
                                assert_eq!(
                                    &stream[u.start as usize..u.end as usize],
                                    u.bytes,
                                    "unit bytes differ from the stream"
                                );
                                let want: Vec<u64> = pushes
                                    .iter()
                                    .filter(|(_, s, e)| *s < u.end && *e > u.start)
                                    .map(|(fr, _, _)| *fr)
                                    .collect();
                                assert_eq!(u.frames, want.as_slice(), "frames");
                                if u.start >= start {
                                    assert!(
                                        range.contains(&u.bytes.as_ptr()),
                                        "unit within one push must be zero-copy"
                                    );
                                }
                                evs.push(Ev::Unit {
                                    kind: u.kind,
                                    bytes: u.bytes.to_vec(),
                                    start: u.start,
                                    end: u.end,
                                });
                            }
                            FramerEvent::Note(n) => {
                                assert!(n.start <= n.end, "{n:?}");
                                evs.push(Ev::Note(n));
                            }
                        });
                        assert!(f.pending_bytes() <= limits.max_element_bytes.max(16));
                        assert_eq!(f.offset(), stream.len() as u64);
                    }
                }
                Op::Gap(n) => {
                    f.gap(*n, &mut |ev| {
                        if let FramerEvent::Note(n) = ev {
                            evs.push(Ev::Note(n));
                        } else {
                            panic!("gap() emits notes only");
                        }
                    });
                    stream.resize(stream.len() + *n as usize, 0);
                    assert_eq!(f.pending_bytes(), 0);
                }
                Op::Resync => f.resync(),
            }
        }
        evs
    }

    fn run_whole(limits: FramerLimits, input: &[u8]) -> Vec<Ev> {
        run_ops(limits, &[Op::Data(input.to_vec())], &[])
    }

    fn run_split(limits: FramerLimits, input: &[u8], cuts: &[usize]) -> Vec<Ev> {
        run_ops(limits, &[Op::Data(input.to_vec())], &[cuts.to_vec()])
    }

    fn run_bytewise(limits: FramerLimits, ops: &[Op]) -> Vec<Ev> {
        let cuts: Vec<Vec<usize>> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Data(d) => Some((0..d.len()).collect()),
                _ => None,
            })
            .collect();
        run_ops(limits, ops, &cuts)
    }

    fn lim() -> FramerLimits {
        FramerLimits::default()
    }

    fn small(max_element_bytes: usize, max_depth: usize) -> FramerLimits {
        FramerLimits {
            max_element_bytes,
            max_depth,
        }
    }

    const HEADER: &str = "<stream:stream from='im.example.com' id=\"x'>y\" \
        to='juliet@im.example.com' version='1.0'xml:lang=\"en\" \
        xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
        data-a='a>b<c' data-b=\"<d/>\">";
    const MESSAGE: &str = "<message from='juliet@example.com/balcony' to='romeo@example.net' \
        type='chat'><body>héllo &amp; 😀</body>\
        <composing xmlns='http://jabber.org/protocol/chatstates'/></message>";

    /// Realistic pieces for building streams.
    fn pieces() -> Vec<&'static str> {
        vec![
            "<?xml version='1.0' encoding=\"UTF-8\"?>",
            HEADER,
            "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>\
             </starttls><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms>\
             </stream:features>",
            "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
            MESSAGE,
            "<presence/>",
            "<presence from='a@b/c' xml:lang='fr'><show>away</show>\
             <status>parti &lt;pêcher&gt; ☺</status><priority>5</priority></presence>",
            "<iq type='result' id='r1'><query xmlns='jabber:iq:roster'>\
             <item jid='a@b' name=\"A &quot;B&quot; > C\"><group>Friends</group></item>\
             <item jid='c@d'/></query></iq>",
            "<!-- keepalive > ping -- - ->-->",
            "<message><body><![CDATA[ <not> a tag ]] > ]]]]></body></message>",
            "<iq type='get' id='p'><?proc inside?><ping xmlns='urn:xmpp:ping'/></iq>",
            "<?pi some data?>",
            " ",
            "\n",
            "\r\n\t ",
            "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dj1ybUYs</success>",
            "<stream:stream xmlns='jabber:client' \
             xmlns:stream=\"http://etherx.jabber.org/streams\" version='1.0'>",
            "</stream:stream>",
        ]
    }

    /// A session with every construct, including malformed bits.
    fn fixed_stream() -> String {
        let mut s = String::new();
        for p in pieces() {
            s.push_str(p);
        }
        s.push_str(
            "</message> text at top < level <<iq/><!DOCTYPE x [<!ENTITY e '&#60;iq>'>]>\
             <?xml version='1.0'?><stream:stream version=\"1.0\">\n<presence/>",
        );
        s
    }

    #[test]
    fn frames_a_whole_session() {
        let input = format!(
            "<?xml version='1.0'?>{HEADER}\n<stream:features><bind \
             xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features> {MESSAGE}</stream:stream>"
        );
        let evs = run_whole(lim(), input.as_bytes());
        let got = units(&evs);
        let want: Vec<(UnitKind, &[u8])> = vec![
            (UnitKind::XmlDecl, b"<?xml version='1.0'?>"),
            (UnitKind::StreamHeader, HEADER.as_bytes()),
            (UnitKind::Whitespace, b"\n"),
            (
                UnitKind::Element,
                b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
            ),
            (UnitKind::Whitespace, b" "),
            (UnitKind::Element, MESSAGE.as_bytes()),
            (UnitKind::StreamEnd, b"</stream:stream>"),
        ];
        assert_eq!(got, want);
        assert!(note_kinds(&evs).is_empty());
    }

    #[test]
    fn quotes_hide_gt_and_lt_in_attribute_values() {
        let input = b"<a x='>' y=\"'>\" z='\"/>'q=\"<b>\"><c v='</a>'/></a><d e=\">\"/>";
        let evs = run_whole(lim(), input);
        assert_eq!(
            units(&evs),
            vec![
                (
                    UnitKind::Element,
                    &b"<a x='>' y=\"'>\" z='\"/>'q=\"<b>\"><c v='</a>'/></a>"[..]
                ),
                (UnitKind::Element, &b"<d e=\">\"/>"[..]),
            ]
        );
    }

    #[test]
    fn self_closing_and_nested_elements() {
        let input = b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\
            <iq><query><item/><item a='1'/><x><y><z/></y></x></query></iq><r />";
        let evs = run_whole(lim(), input);
        assert_eq!(
            units(&evs),
            vec![
                (
                    UnitKind::Element,
                    &b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"[..]
                ),
                (
                    UnitKind::Element,
                    &b"<iq><query><item/><item a='1'/><x><y><z/></y></x></query></iq>"[..]
                ),
                (UnitKind::Element, &b"<r />"[..]),
            ]
        );
        // `/` inside a quoted value right before `>` is not self-closing.
        let evs = run_whole(lim(), b"<a b='/'><c/></a>");
        assert_eq!(
            units(&evs),
            vec![(UnitKind::Element, &b"<a b='/'><c/></a>"[..])]
        );
    }

    #[test]
    fn comments_end_only_at_dash_dash_gt() {
        let input = b"<!-- a > b -- -> - ->--><!----><!-->--><m><!-- </m> --></m>";
        let evs = run_whole(lim(), input);
        assert_eq!(
            units(&evs),
            vec![
                (UnitKind::Comment, &b"<!-- a > b -- -> - ->-->"[..]),
                (UnitKind::Comment, &b"<!---->"[..]),
                (UnitKind::Comment, &b"<!-->-->"[..]),
                (UnitKind::Element, &b"<m><!-- </m> --></m>"[..]),
            ]
        );
    }

    #[test]
    fn cdata_ends_only_at_brackets_gt() {
        let input = b"<m><![CDATA[ <not> a tag ]] > ] ]> ]]]]></m><![CDATA[x]]>";
        let evs = run_whole(lim(), input);
        assert_eq!(
            units(&evs),
            vec![
                (
                    UnitKind::Element,
                    &b"<m><![CDATA[ <not> a tag ]] > ] ]> ]]]]></m>"[..]
                ),
                (UnitKind::Text, &b"<![CDATA[x]]>"[..]),
            ]
        );
    }

    #[test]
    fn processing_instructions_and_xml_declaration() {
        let input = b"<?xml version='1.0'?><?xml-stylesheet href='a>b'?><?pi x > y?>\
            <a><?pi <b> ?></a><?xml?>";
        let evs = run_whole(lim(), input);
        assert_eq!(
            units(&evs),
            vec![
                (UnitKind::XmlDecl, &b"<?xml version='1.0'?>"[..]),
                (UnitKind::Pi, &b"<?xml-stylesheet href='a>b'?>"[..]),
                (UnitKind::Pi, &b"<?pi x > y?>"[..]),
                (UnitKind::Element, &b"<a><?pi <b> ?></a>"[..]),
                (UnitKind::XmlDecl, &b"<?xml?>"[..]),
            ]
        );
    }

    #[test]
    fn stream_restart_frames_decl_and_header_again() {
        let input = format!(
            "<?xml version='1.0'?>{HEADER}<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>\
             <?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>\
             <presence/></stream:stream>"
        );
        let mut f = Framer::new(lim());
        assert!(!f.header_seen());
        let mut kinds = Vec::new();
        f.push(input.as_bytes(), 1, &mut |ev| {
            if let FramerEvent::Unit(u) = ev {
                kinds.push(u.kind);
            }
        });
        use UnitKind::*;
        assert_eq!(
            kinds,
            vec![
                XmlDecl,
                StreamHeader,
                Element,
                XmlDecl,
                StreamHeader,
                Element,
                StreamEnd
            ]
        );
        assert!(f.header_seen());
        // Unprefixed and other-prefix roots are headers too; a self-closed one is an element.
        let evs = run_whole(
            lim(),
            b"<stream a='1'><x:stream>\n</stream ><stream:stream/>",
        );
        assert_eq!(
            evs.iter().filter_map(kind).collect::<Vec<_>>(),
            vec![StreamHeader, StreamHeader, Whitespace, StreamEnd, Element]
        );
        // A name that merely contains "stream" is not a header.
        let evs = run_whole(lim(), b"<streams><streamx/></streams>");
        assert_eq!(
            evs.iter().filter_map(kind).collect::<Vec<_>>(),
            vec![Element]
        );
    }

    #[test]
    fn elements_before_any_header_are_top_level() {
        let input = b"<iq type='result' id='1'><query/></iq><message><body>x</body></message>";
        let mut f = Framer::new(lim());
        let mut got = Vec::new();
        f.push(input, 7, &mut |ev| {
            if let FramerEvent::Unit(u) = ev {
                got.push((u.kind, u.bytes.to_vec(), u.frames.to_vec()));
            }
        });
        assert!(!f.header_seen());
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, UnitKind::Element);
        assert_eq!(got[0].1, b"<iq type='result' id='1'><query/></iq>");
        assert_eq!(got[1].2, vec![7]);
    }

    #[test]
    fn whitespace_and_text_are_emitted_unbuffered() {
        let mut f = Framer::new(lim());
        let mut got = Vec::new();
        let mut sink = |ev: FramerEvent<'_>| {
            if let FramerEvent::Unit(u) = ev {
                got.push((u.kind, u.bytes.to_vec(), u.start, u.end));
            }
        };
        f.push(b" \r\n", 1, &mut sink);
        assert_eq!(f.pending_bytes(), 0);
        assert!(!f.in_unit());
        f.push(b"\t", 2, &mut sink);
        f.push(b"  junk ", 3, &mut sink);
        f.push(b"more<a/>", 4, &mut sink);
        use UnitKind::*;
        assert_eq!(
            got,
            vec![
                (Whitespace, b" \r\n".to_vec(), 0, 3),
                (Whitespace, b"\t".to_vec(), 3, 4),
                (Whitespace, b"  ".to_vec(), 4, 6),
                (Text, b"junk ".to_vec(), 6, 11),
                (Text, b"more".to_vec(), 11, 15),
                (Element, b"<a/>".to_vec(), 15, 19),
            ]
        );
    }

    #[test]
    fn resync_skips_to_a_plausible_unit_start() {
        let ops = [
            Op::Resync,
            Op::Data(b"ody>hi &amp; < 3 <3 <!-- c --></body></message><?pi?><iq/>".to_vec()),
        ];
        let evs = run_ops(lim(), &ops, &[]);
        let skipped = b"ody>hi &amp; < 3 <3 <!-- c --></body></message><?pi?>".len() as u64;
        assert_eq!(
            evs,
            vec![
                Ev::Note(FramerNote {
                    kind: FramerNoteKind::Resync,
                    start: 0,
                    end: skipped,
                    detail: DETAIL_SKIPPED,
                }),
                Ev::Unit {
                    kind: UnitKind::Element,
                    bytes: b"<iq/>".to_vec(),
                    start: skipped,
                    end: skipped + 5
                },
            ]
        );
        // Nothing skipped: no note.
        let evs = run_ops(lim(), &[Op::Resync, Op::Data(b"<a/>".to_vec())], &[]);
        assert_eq!(note_kinds(&evs), vec![]);
        assert_eq!(units(&evs), vec![(UnitKind::Element, &b"<a/>"[..])]);
    }

    #[test]
    fn resync_waits_for_the_byte_after_lt_across_pushes() {
        let mut f = Framer::new(lim());
        f.resync();
        assert!(f.is_resyncing());
        let mut evs = Vec::new();
        let mut sink = |ev: FramerEvent<'_>| match ev {
            FramerEvent::Unit(u) => evs.push(format!(
                "{:?} {} {}..{} {:?}",
                u.kind,
                String::from_utf8_lossy(u.bytes),
                u.start,
                u.end,
                u.frames
            )),
            FramerEvent::Note(n) => evs.push(format!("{:?} {}..{}", n.kind, n.start, n.end)),
        };
        f.push(b"garbage<", 1, &mut sink);
        assert!(!f.in_unit());
        f.push(b"<", 2, &mut sink);
        f.push(b"iq", 3, &mut sink);
        f.push(b"/>", 4, &mut sink);
        f.push(b"</stream:", 5, &mut sink);
        f.push(b"stream>", 6, &mut sink);
        assert_eq!(
            evs,
            vec![
                "Resync 0..8".to_string(),
                "Element <iq/> 8..13 [2, 3, 4]".to_string(),
                "StreamEnd </stream:stream> 13..29 [5, 6]".to_string(),
            ]
        );
    }

    #[test]
    fn resync_accepts_xml_decl_and_stream_end_only() {
        use UnitKind::*;
        for (input, want_kind, skipped) in [
            (&b"x</message><?xml version='1.0'?>"[..], XmlDecl, 11u64),
            (&b"x</message></stream:stream>"[..], StreamEnd, 11),
            (&b"<?x<iq/>"[..], Element, 3),
            (&b"</stream<iq/>"[..], Element, 8),
            (&b"<!--<x/>-->"[..], Element, 4),
        ] {
            let evs = run_bytewise(lim(), &[Op::Resync, Op::Data(input.to_vec())]);
            let Ev::Note(n) = &evs[0] else {
                panic!("{evs:?}")
            };
            assert_eq!(
                (n.kind, n.start, n.end),
                (FramerNoteKind::Resync, 0, skipped)
            );
            assert_eq!(kind(&evs[1]), Some(want_kind), "{input:?}");
        }
    }

    #[test]
    fn top_level_close_tag_is_malformed_and_skipped() {
        let evs = run_whole(lim(), b"<body>hi</body></message>\n<message/>");
        assert_eq!(
            evs,
            vec![
                Ev::Unit {
                    kind: UnitKind::Element,
                    bytes: b"<body>hi</body>".to_vec(),
                    start: 0,
                    end: 15
                },
                Ev::Note(FramerNote {
                    kind: FramerNoteKind::Malformed,
                    start: 15,
                    end: 25,
                    detail: DETAIL_CLOSE,
                }),
                Ev::Unit {
                    kind: UnitKind::Whitespace,
                    bytes: b"\n".to_vec(),
                    start: 25,
                    end: 26
                },
                Ev::Unit {
                    kind: UnitKind::Element,
                    bytes: b"<message/>".to_vec(),
                    start: 26,
                    end: 36
                },
            ]
        );
    }

    #[test]
    fn doctype_is_malformed_skipped_and_never_expanded() {
        let input = b"<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY lol 'lol'>\
            <!ENTITY lol2 '&lol;&lol;'><!-- x -->]><stream:stream>";
        let evs = run_whole(lim(), input);
        let dt_end = input.len() as u64 - 15;
        assert_eq!(
            evs[1],
            Ev::Note(FramerNote {
                kind: FramerNoteKind::Malformed,
                start: 21,
                end: 23,
                detail: DETAIL_DOCTYPE,
            })
        );
        assert_eq!(
            evs[2],
            Ev::Note(FramerNote {
                kind: FramerNoteKind::Resync,
                start: 23,
                end: dt_end,
                detail: DETAIL_SKIPPED,
            })
        );
        assert_eq!(kind(&evs[3]), Some(UnitKind::StreamHeader));
        assert_eq!(evs.len(), 4);
    }

    #[test]
    fn bad_byte_after_lt_is_malformed_then_resyncs() {
        // Inside an element: the whole element is abandoned.
        let input = b"<message><body>a < b</body></message><presence/>";
        let evs = run_whole(lim(), input);
        assert_eq!(
            note_kinds(&evs),
            vec![FramerNoteKind::Malformed, FramerNoteKind::Resync]
        );
        let Ev::Note(m) = &evs[0] else { panic!() };
        assert_eq!((m.start, m.end), (0, 18));
        let Ev::Note(r) = &evs[1] else { panic!() };
        assert_eq!((r.start, r.end), (18, 37));
        assert_eq!(units(&evs), vec![(UnitKind::Element, &b"<presence/>"[..])]);
        // At top level, the offending byte may itself start the next unit.
        let evs = run_whole(lim(), b"<<iq/><!x><a/><![CDAT<b/>");
        assert_eq!(
            note_kinds(&evs),
            vec![
                FramerNoteKind::Malformed,
                FramerNoteKind::Malformed,
                FramerNoteKind::Resync,
                FramerNoteKind::Malformed
            ]
        );
        assert_eq!(
            units(&evs),
            vec![
                (UnitKind::Element, &b"<iq/>"[..]),
                (UnitKind::Element, &b"<a/>"[..]),
                (UnitKind::Element, &b"<b/>"[..])
            ]
        );
    }

    #[test]
    fn gap_drops_the_partial_unit_and_resyncs() {
        let mut f = Framer::new(lim());
        let mut evs = Vec::new();
        let mut sink = |ev: FramerEvent<'_>| match ev {
            FramerEvent::Unit(u) => evs.push(Ev::Unit {
                kind: u.kind,
                bytes: u.bytes.to_vec(),
                start: u.start,
                end: u.end,
            }),
            FramerEvent::Note(n) => evs.push(Ev::Note(n)),
        };
        f.push(b"<a/><message><bo", 1, &mut sink);
        assert!(f.in_unit());
        assert_eq!(f.unit_start(), Some(4));
        assert_eq!(f.pending_bytes(), 12);
        f.gap(100, &mut sink);
        assert!(!f.in_unit());
        assert_eq!(f.pending_bytes(), 0);
        assert_eq!(f.offset(), 116);
        f.push(b"dy>x</body></message><presence/>", 2, &mut sink);
        // A gap inside a nested element drops the whole partial unit.
        f.push(b"<a><b>", 3, &mut sink);
        f.gap(5, &mut sink);
        f.push(b"x</b></a>\n", 4, &mut sink);
        f.push(b"<c/>", 5, &mut sink);
        assert_eq!(
            evs,
            vec![
                Ev::Unit {
                    kind: UnitKind::Element,
                    bytes: b"<a/>".to_vec(),
                    start: 0,
                    end: 4
                },
                Ev::Note(FramerNote {
                    kind: FramerNoteKind::Resync,
                    start: 4,
                    end: 16,
                    detail: DETAIL_PARTIAL_GAP,
                }),
                Ev::Note(FramerNote {
                    kind: FramerNoteKind::Resync,
                    start: 116,
                    end: 137,
                    detail: DETAIL_SKIPPED,
                }),
                Ev::Unit {
                    kind: UnitKind::Element,
                    bytes: b"<presence/>".to_vec(),
                    start: 137,
                    end: 148
                },
                Ev::Note(FramerNote {
                    kind: FramerNoteKind::Resync,
                    start: 148,
                    end: 154,
                    detail: DETAIL_PARTIAL_GAP,
                }),
                Ev::Note(FramerNote {
                    kind: FramerNoteKind::Resync,
                    start: 159,
                    end: 169,
                    detail: DETAIL_SKIPPED,
                }),
                Ev::Unit {
                    kind: UnitKind::Element,
                    bytes: b"<c/>".to_vec(),
                    start: 169,
                    end: 173
                },
            ]
        );
        // A gap while still resyncing reports what was skipped so far.
        f.resync();
        f.push(b"zz", 6, &mut |_| {});
        let mut notes = Vec::new();
        f.gap(1, &mut |ev| notes.push(format!("{ev:?}")));
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("start: 173, end: 175"), "{notes:?}");
    }

    #[test]
    fn resync_counts_a_dropped_partial_unit() {
        let mut f = Framer::new(lim());
        let mut evs = Vec::new();
        f.push(b"<message><bo", 1, &mut |_| {});
        f.resync();
        f.push(b"dy/></message><a/>", 2, &mut |ev| {
            if let FramerEvent::Note(n) = ev {
                evs.push((n.kind, n.start, n.end));
            }
        });
        assert_eq!(evs, vec![(FramerNoteKind::Resync, 0, 26)]);
    }

    #[test]
    fn every_split_point_gives_the_same_output() {
        let input = fixed_stream();
        let input = input.as_bytes();
        for limits in [lim(), small(150, 2)] {
            let whole = coalesce(run_whole(limits, input));
            assert!(whole.len() > 20, "{whole:#?}");
            for k in 0..=input.len() {
                let split = coalesce(run_split(limits, input, &[k]));
                assert_eq!(split, whole, "split at {k}");
            }
            let bytewise = coalesce(run_bytewise(limits, &[Op::Data(input.to_vec())]));
            assert_eq!(bytewise, whole);
        }
        // And with every default-limit kind present.
        let whole = coalesce(run_whole(lim(), input));
        let mut kinds: Vec<String> = whole
            .iter()
            .map(|e| match e {
                Ev::Unit { kind, .. } => format!("{kind:?}"),
                Ev::Note(n) => format!("{:?}", n.kind),
            })
            .collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(
            kinds,
            [
                "Comment",
                "Element",
                "Malformed",
                "Pi",
                "Resync",
                "StreamEnd",
                "StreamHeader",
                "Text",
                "Whitespace",
                "XmlDecl"
            ]
        );
    }

    #[test]
    fn splits_inside_terminators_and_utf8() {
        let input = "<a><!-- x --></a><![CDATA[ ]]]]><m>é😀</m><?p ??>".as_bytes();
        let whole = coalesce(run_whole(lim(), input));
        for a in 0..=input.len() {
            for b in a..=input.len() {
                assert_eq!(coalesce(run_split(lim(), input, &[a, b])), whole, "{a} {b}");
            }
        }
    }

    #[test]
    fn units_within_one_push_are_zero_copy_and_frames_are_tracked() {
        // `run_ops` asserts zero-copy and frames on every unit; here with
        // repeated frame numbers too.
        let mut f = Framer::new(lim());
        let mut got = Vec::new();
        let mut sink = |ev: FramerEvent<'_>| {
            if let FramerEvent::Unit(u) = ev {
                got.push(u.frames.to_vec());
            }
        };
        f.push(b"<a>", 5, &mut sink);
        f.push(b"<b/>", 5, &mut sink);
        f.push(b"</a><c>", 6, &mut sink);
        f.push(b"", 7, &mut sink);
        f.push(b"</c>", 8, &mut sink);
        assert_eq!(got, vec![vec![5, 6], vec![6, 8]]);
        assert_eq!(f.offset(), 18);
    }

    fn too_large_input(body: usize) -> Vec<u8> {
        let mut v = b"<message to='a@b'><body>".to_vec();
        let mut n = 0;
        while n < body {
            v.extend_from_slice(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa<b x='>'>y</b><!-- > -->");
            n += 52;
        }
        v.extend_from_slice(b"</body></message><presence/>");
        v
    }

    #[test]
    fn ten_megabyte_element_is_skipped_with_one_note() {
        let input = too_large_input(10 << 20);
        let max = DEFAULT_MAX_ELEMENT_BYTES;
        for chunk in [input.len(), 65536, 1460, 1_000_003] {
            let mut f = Framer::new(lim());
            let mut evs = Vec::new();
            for (k, c) in input.chunks(chunk).enumerate() {
                f.push(c, k as u64, &mut |ev| match ev {
                    FramerEvent::Unit(u) => evs.push(Ev::Unit {
                        kind: u.kind,
                        bytes: u.bytes.to_vec(),
                        start: u.start,
                        end: u.end,
                    }),
                    FramerEvent::Note(n) => evs.push(Ev::Note(n)),
                });
                assert!(f.pending_bytes() <= max, "{}", f.pending_bytes());
                assert!(f.buf.capacity() <= max + 64);
            }
            let p = input.len() as u64 - 11;
            assert_eq!(
                evs,
                vec![
                    Ev::Note(FramerNote {
                        kind: FramerNoteKind::ElementTooLarge,
                        start: 0,
                        end: max as u64 + 1,
                        detail: DETAIL_TOO_LARGE,
                    }),
                    Ev::Unit {
                        kind: UnitKind::Element,
                        bytes: b"<presence/>".to_vec(),
                        start: p,
                        end: p + 11
                    },
                ],
                "chunk {chunk}"
            );
            assert!(!f.in_unit());
            assert!(f.buf.capacity() <= BUF_KEEP);
        }
    }

    #[test]
    fn deep_nesting_is_skipped_with_one_note() {
        let n = 100_000;
        let mut input = Vec::new();
        input.extend_from_slice(b"<iq>");
        for _ in 0..n {
            input.extend_from_slice(b"<a x='1'>");
        }
        for _ in 0..n {
            input.extend_from_slice(b"</a>");
        }
        input.extend_from_slice(b"</iq><presence/>");
        for chunk in [input.len(), 1460, 7] {
            let mut f = Framer::new(lim());
            let mut evs = Vec::new();
            for (k, c) in input.chunks(chunk).enumerate() {
                f.push(c, k as u64, &mut |ev| match ev {
                    FramerEvent::Unit(u) => evs.push((Some(u.kind), u.start, u.bytes.to_vec())),
                    FramerEvent::Note(n) => evs.push((None, n.end, n.detail.as_bytes().to_vec())),
                });
                assert!(f.pending_bytes() <= DEFAULT_MAX_ELEMENT_BYTES);
                assert!(f.frames.len() <= 2 * DEFAULT_MAX_ELEMENT_BYTES / 1460 + 2);
            }
            // The 257th open element is the 256th <a>.
            let depth_end = 4 + 256 * 9;
            assert_eq!(
                evs,
                vec![
                    (None, depth_end, DETAIL_TOO_DEEP.as_bytes().to_vec()),
                    (
                        Some(UnitKind::Element),
                        input.len() as u64 - 11,
                        b"<presence/>".to_vec()
                    ),
                ]
            );
        }
        // Depth exactly at the limit is fine.
        let mut ok = b"<x>".repeat(4);
        ok.extend_from_slice(&b"</x>".repeat(4));
        let evs = run_whole(small(1000, 4), &ok);
        assert_eq!(units(&evs), vec![(UnitKind::Element, ok.as_slice())]);
    }

    #[test]
    fn oversized_stream_header_still_ends_at_its_gt() {
        let header = format!("<stream:stream to='{}'>", "x".repeat(300));
        let input = format!("{header}<message/></stream:stream>");
        for limits in [small(64, 8), small(8, 8), small(0, 8)] {
            let whole = run_whole(limits, input.as_bytes());
            assert_eq!(note_kinds(&whole), vec![FramerNoteKind::ElementTooLarge]);
            let u = units(&whole);
            if limits.max_element_bytes >= 16 {
                assert_eq!(
                    u,
                    vec![
                        (UnitKind::Element, &b"<message/>"[..]),
                        (UnitKind::StreamEnd, &b"</stream:stream>"[..])
                    ]
                );
            }
            assert_eq!(
                run_bytewise(limits, &[Op::Data(input.clone().into_bytes())]),
                whole
            );
        }
    }

    #[test]
    fn reset_restarts_offsets() {
        let mut f = Framer::new(lim());
        f.push(b"<stream:stream><a", 1, &mut |_| {});
        assert!(f.header_seen());
        assert!(f.in_unit());
        f.reset();
        assert_eq!(
            (f.offset(), f.in_unit(), f.header_seen()),
            (0, false, false)
        );
        let mut got = Vec::new();
        f.push(b"<b/>", 2, &mut |ev| {
            if let FramerEvent::Unit(u) = ev {
                got.push((u.start, u.end));
            }
        });
        assert_eq!(got, vec![(0, 4)]);
    }

    fn realistic_ops() -> impl Strategy<Value = Vec<Op>> {
        let piece = prop::sample::select(pieces());
        let op = prop_oneof![
            20 => prop::collection::vec(piece, 1..8)
                .prop_map(|v| Op::Data(v.concat().into_bytes())),
            1 => (0u64..40).prop_map(Op::Gap),
            1 => Just(Op::Resync),
        ];
        prop::collection::vec(op, 1..12)
    }

    fn xmlish_ops() -> impl Strategy<Value = Vec<Op>> {
        let tokens = vec![
            "<",
            ">",
            "/",
            "/>",
            "!",
            "-",
            "--",
            "-->",
            "<!--",
            "<![CDATA[",
            "]",
            "]]>",
            "?",
            "?>",
            "<?xml ",
            "<?x",
            "'",
            "\"",
            "a",
            "stream:stream",
            "<stream:stream>",
            "</stream:stream>",
            "<a>",
            "</a>",
            "<a/>",
            "<b c='>'>",
            "</",
            " ",
            "\n",
            "é",
            "😀",
            "D",
            "<!DOCTYPE x [<!ENTITY e '<a>'>]>",
            "=",
            ":",
            "x",
        ];
        let op = prop_oneof![
            12 => prop::collection::vec(prop::sample::select(tokens), 0..40)
                .prop_map(|v| Op::Data(v.concat().into_bytes())),
            1 => (0u64..10).prop_map(Op::Gap),
            1 => Just(Op::Resync),
        ];
        prop::collection::vec(op, 1..8)
    }

    fn cuts() -> impl Strategy<Value = Vec<Vec<usize>>> {
        prop::collection::vec(prop::collection::vec(0usize..100_000, 0..6), 12)
    }

    fn limits_strategy() -> impl Strategy<Value = FramerLimits> {
        prop_oneof![
            Just(FramerLimits::default()),
            (0usize..120, 0usize..5).prop_map(|(m, d)| small(m, d)),
        ]
    }

    fn check_split_invariance(limits: FramerLimits, ops: &[Op], cuts: &[Vec<usize>]) {
        let whole = coalesce(run_ops(limits, ops, &[]));
        let split = coalesce(run_ops(limits, ops, cuts));
        assert_eq!(split, whole);
        let bytewise = coalesce(run_bytewise(limits, ops));
        assert_eq!(bytewise, whole);
    }

    /// Everything the framer keeps between pushes.
    fn state_of(f: &Framer) -> String {
        format!(
            "{:?} off={} open={} start={} depth={} drop={} stream={} last={} text={} resync={} buf={:?} frames={:?}",
            f.st,
            f.offset,
            f.unit_open,
            f.unit_start,
            f.depth,
            f.dropping,
            f.first_is_stream,
            f.last_byte,
            f.in_text,
            f.resyncing,
            f.buf,
            f.frames
        )
    }

    fn push_collect(f: &mut Framer, data: &[u8], frame: u64, evs: &mut Vec<(Ev, Vec<u64>)>) {
        f.push(data, frame, &mut |ev| {
            evs.push(match ev {
                FramerEvent::Unit(u) => (
                    Ev::Unit {
                        kind: u.kind,
                        bytes: u.bytes.to_vec(),
                        start: u.start,
                        end: u.end,
                    },
                    u.frames.to_vec(),
                ),
                FramerEvent::Note(n) => (Ev::Note(n), Vec::new()),
            });
        });
    }

    /// A unit that [`super::super::lite::frame`] read up to the end of its
    /// input, handed over with [`Framer::resume`], leaves the framer as
    /// scanning the same bytes does; the rest of the stream then gives the
    /// same units and notes.
    fn check_resume(limits: FramerLimits, lead: &str, unit: &str, cut: usize) {
        use super::super::element::{NS_STREAMS, Scope};
        use super::super::lite::{Framed, frame};
        let scope = Scope {
            default_ns: std::sync::Arc::from("jabber:client"),
            prefixes: vec![("stream".into(), std::sync::Arc::from(NS_STREAMS))],
        };
        let mut cut = cut % (unit.len() + 1);
        while !unit.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = unit.split_at(cut);
        let Framed::Partial { depth, at } =
            frame(head, &scope, limits.max_element_bytes, limits.max_depth)
        else {
            return;
        };
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        let mut a = Framer::new(limits);
        push_collect(&mut a, lead.as_bytes(), 1, &mut ea);
        let mut b = Framer::new(limits);
        push_collect(&mut b, lead.as_bytes(), 1, &mut eb);
        assert!(b.at_top(), "{lead:?}");
        push_collect(&mut a, head.as_bytes(), 2, &mut ea);
        assert!(
            b.resume(head.as_bytes(), 2, depth, at),
            "{head:?} {depth} {at:?}"
        );
        assert_eq!(state_of(&a), state_of(&b), "{head:?} {depth} {at:?}");
        for (k, chunk) in tail.as_bytes().chunks(7).enumerate() {
            push_collect(&mut a, chunk, 3 + k as u64, &mut ea);
            push_collect(&mut b, chunk, 3 + k as u64, &mut eb);
        }
        assert_eq!(ea, eb, "{head:?}");
        assert_eq!(state_of(&a), state_of(&b));
    }

    #[test]
    fn resume_matches_scanning_at_every_cut() {
        let units = [
            MESSAGE,
            "<iq type='result' id='r'><query xmlns='jabber:iq:roster'><item jid='a@b' name=\"A &apos;B&apos;\"><group>G</group></item><item jid='c@d'/></query></iq>",
            "<presence>\n  <show>away</show>\n  <status>in a\r\nmeeting</status>\n</presence >",
            "<a xmlns='urn:x' xmlns:p='urn:p'><p:b p:c='1' xml:lang='en'><c xmlns=''/></p:b></a >",
            "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<a/>",
            "<x a='&amp;'>&#65;&lt;</x>",
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
            "<a><b><c><d><e/></d></c></b></a>",
        ];
        for lead in ["", " ", "<r/>\n", "\r\n\t"] {
            for unit in units {
                for cut in 0..=unit.len() {
                    check_resume(lim(), lead, unit, cut);
                    check_resume(small(40, 2), lead, unit, cut);
                    check_resume(small(1000, 3), lead, unit, cut);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The word-by-word searches find what `memchr` finds.
        #[test]
        fn prop_short_searches_are_memchr(
            hay in prop::collection::vec(prop_oneof![
                Just(b'a'), Just(b'<'), Just(b'>'), Just(b'\''), Just(b'"'), Just(b'&'),
                any::<u8>(),
            ], 0..90),
            from in 0usize..90,
        ) {
            let hay = hay.get(from.min(hay.len())..).unwrap_or_default();
            for (a, b, c) in [(b'<', b'&', b'>'), (b'\'', b'"', b'>'), (b'a', 0x80, 0xff)] {
                prop_assert_eq!(find1(a, hay), memchr(a, hay));
                prop_assert_eq!(find2(a, b, hay), memchr2(a, b, hay));
                prop_assert_eq!(find3(a, b, c, hay), memchr3(a, b, c, hay));
            }
        }

        /// [`check_resume`] on random edits of real units, cut anywhere.
        #[test]
        fn prop_resume_matches_scanning(
            which in 0usize..5,
            edits in prop::collection::vec((0usize..300, 0usize..20), 0..4),
            cut in 0usize..400,
            limits in limits_strategy(),
        ) {
            const UNITS: [&str; 5] = [
                "<message to='a@b/c' type='chat' id='x1'><body>Hi &amp; bye &#233;</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
                "<iq type='result' id='r'><query xmlns='jabber:iq:roster'><item jid='a@b' name='A'><group>G</group></item></query></iq>",
                "<presence from='a@b/r'><show>dnd</show><c xmlns='http://jabber.org/protocol/caps' node='n' ver='v=' hash='sha-1'/></presence>",
                "<iq type='error' id='e'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
                "<a xmlns='urn:xmpp:sm:3' h='12'/>",
            ];
            const INSERTS: [&str; 20] = [
                "<", ">", "/", "'", "\"", "&", ";", "=", " ", "\r\n", ":", "x", "&amp;",
                "<b/>", "</b>", "<b>", "xmlns='u'", "p:", "é", "<!--c-->",
            ];
            let mut x = UNITS[which].to_owned();
            for (pos, ins) in edits {
                let mut pos = pos % (x.len() + 1);
                while !x.is_char_boundary(pos) {
                    pos -= 1;
                }
                if ins % 3 == 0 && pos < x.len() {
                    x.remove(pos);
                } else {
                    x.insert_str(pos, INSERTS[ins]);
                }
            }
            check_resume(limits, "", &x, cut);
            check_resume(limits, " ", &x, cut);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Realistic XMPP streams cut anywhere give identical output.
        #[test]
        fn prop_realistic_streams_split_anywhere(ops in realistic_ops(), cuts in cuts()) {
            check_split_invariance(FramerLimits::default(), &ops, &cuts);
            // Well-formed input without gaps yields no notes.
            if ops.iter().all(|o| matches!(o, Op::Data(_))) {
                let evs = run_ops(FramerLimits::default(), &ops, &cuts);
                let notes = note_kinds(&evs);
                prop_assert!(notes.is_empty(), "{:?}", notes);
            }
        }

        /// XML-ish token soup (malformed on purpose), with small limits.
        #[test]
        fn prop_xmlish_soup_split_anywhere(
            ops in xmlish_ops(), cuts in cuts(), limits in limits_strategy()
        ) {
            check_split_invariance(limits, &ops, &cuts);
        }

        /// Arbitrary bytes: no panic, bounded buffer, split invariance.
        #[test]
        fn prop_random_bytes_never_panic(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..6),
            cuts in cuts(),
            limits in limits_strategy(),
        ) {
            let ops: Vec<Op> = chunks.into_iter().map(Op::Data).collect();
            check_split_invariance(limits, &ops, &cuts);
        }
    }
}

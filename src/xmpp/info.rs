//! The Info column: one short item per top-level element, in Wireshark's
//! words (`STREAM > to`, `FEATURES`, `AUTH`, `IQ(get) QUERY(jabber:iq:roster)`,
//! `PRESENCE < jid`, `MESSAGE > jid`, `STREAM END`), with the names that
//! Wireshark lacks for stream errors, XEP-0198, XEP-0352, dialback and
//! component handshakes.
//!
//! Direction arrows follow Wireshark: towards the server `> to`, from the
//! server `< from`.

use std::fmt::Write as _;

use super::element::Element;
use super::lite::{El, Tree};
use crate::model::{ChatState, Dir, EventKind, Facts, Note, NoteKind, StanzaKind};

pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const NS_STREAMS: &str = super::element::NS_STREAMS;
pub const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const NS_STANZA_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const NS_CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
pub const NS_SM3: &str = "urn:xmpp:sm:3";
pub const NS_SM2: &str = "urn:xmpp:sm:2";
pub const NS_CSI: &str = "urn:xmpp:csi:0";
pub const NS_DIALBACK: &str = "jabber:server:dialback";
pub const NS_COMPRESS: &str = "http://jabber.org/protocol/compress";

/// What we learnt from one element.
#[derive(Debug, Clone, Default)]
pub struct Described {
    pub info: String,
    pub chat_state: Option<ChatState>,
    pub has_body: bool,
    pub notes: Vec<Note>,
    pub facts: Facts,
    /// A stanza (message/presence/iq) rather than a nonza.
    pub stanza: bool,
}

impl Described {
    #[must_use]
    pub fn kind(&self) -> EventKind {
        if self.stanza {
            EventKind::Stanza
        } else {
            EventKind::Nonza
        }
    }
}

/// Info for a stream header (`STREAM > to` / `STREAM < from`).
#[must_use]
pub fn stream_header(el: &Element, dir: Dir) -> String {
    let mut s = String::from("STREAM");
    push_arrow(&mut s, el.attr("to"), el.attr("from"), dir);
    s
}

fn push_arrow(s: &mut String, to: Option<&str>, from: Option<&str>, dir: Dir) {
    let (arrow, v) = match dir {
        Dir::ClientToServer => (" > ", to),
        Dir::ServerToClient => (" < ", from),
    };
    if let Some(v) = v.filter(|v| !v.is_empty()) {
        s.push_str(arrow);
        s.push_str(v);
    }
}

fn arrow(s: &mut String, el: El<'_, '_>, dir: Dir) {
    push_arrow(s, el.attr("to"), el.attr("from"), dir);
}

/// Short form of a namespace for `QUERY(…)`: the part after the last `/`
/// (`http://jabber.org/protocol/disco#info` → `disco#info`), or the whole
/// namespace when it has none (`jabber:iq:roster`).
#[must_use]
pub fn short_ns(ns: &str) -> &str {
    ns.rsplit('/').next().unwrap_or(ns)
}

/// Describe one top-level element.
#[must_use]
pub fn describe(el: &Element, dir: Dir) -> Described {
    describe_el(Tree::from_element(el).root(), dir)
}

/// Describe one top-level element, read by [`super::lite`] or viewed from
/// an [`Element`].
#[must_use]
pub fn describe_el(el: El<'_, '_>, dir: Dir) -> Described {
    describe_with(el, dir, true)
}

/// [`describe_el`] for a run that prints only `--stats`: the same kind,
/// chat state, body flag, facts and notes, but no Info text for stanzas
/// (`info` left empty), which are most of a capture and whose Info the
/// statistics never read. Other elements keep their Info: `--stats`
/// counts unknown ones by it and reads the SASL mechanism from it, and
/// they are a few per stream.
#[must_use]
pub fn describe_counts(el: El<'_, '_>, dir: Dir) -> Described {
    describe_with(el, dir, false)
}

/// [`describe_el`], with the Info text of stanzas built only when `text`.
fn describe_with(el: El<'_, '_>, dir: Dir, text: bool) -> Described {
    let mut d = Described::default();
    let local = el.local();
    let ns: &str = el.ns();
    match (local, ns) {
        ("message", _) => message(el, dir, &mut d, text),
        ("presence", _) => presence(el, dir, &mut d, text),
        ("iq", _) => iq(el, dir, &mut d, text),
        ("features", NS_STREAMS) => d.info = "FEATURES".into(),
        ("error", NS_STREAMS) => {
            let cond = el
                .children()
                .find(|c| c.ns() == NS_STREAM_ERRORS && c.local() != "text")
                .map_or("undefined-condition", El::local);
            d.info = format!("STREAM ERROR {cond}");
            if let Some(t) = el.child("text").map(El::text).filter(|t| !t.is_empty()) {
                push_quoted(&mut d.info, &t, 40);
            }
            d.notes.push(Note::new(
                NoteKind::StreamError,
                format!("stream error: {cond}"),
            ));
        }
        ("starttls", NS_TLS) => d.info = "STARTTLS".into(),
        ("proceed", NS_TLS) => d.info = "PROCEED".into(),
        ("failure", NS_TLS) => d.info = "FAILURE (STARTTLS)".into(),
        ("auth", NS_SASL) => auth(el, &mut d),
        ("challenge", NS_SASL) => d.info = "CHALLENGE".into(),
        ("response", NS_SASL) => d.info = "RESPONSE".into(),
        ("success", NS_SASL) => d.info = "SUCCESS".into(),
        ("abort", NS_SASL) => d.info = "ABORT".into(),
        ("failure", NS_SASL) => {
            let cond = el
                .children()
                .find(|c| c.local() != "text")
                .map_or("", El::local);
            d.info = format!("FAILURE {cond}").trim_end().to_owned();
            d.notes.push(Note::new(
                NoteKind::SaslFailure,
                format!("SASL authentication failed: {cond}"),
            ));
        }
        (_, NS_SM3 | NS_SM2) => {
            d.info = format!("SM {local}");
            for a in ["h", "resume", "max", "previd", "id"] {
                if let Some(v) = el.attr(a) {
                    let _ = write!(d.info, " {a}={v}");
                }
            }
        }
        ("active" | "inactive", NS_CSI) => d.info = format!("CSI {local}"),
        ("result" | "verify", NS_DIALBACK) => {
            d.info = format!("DIALBACK {local}");
            if let Some(t) = el.attr("type") {
                let _ = write!(d.info, " {t}");
            }
        }
        ("handshake", _) => d.info = "HANDSHAKE".into(),
        ("compress", NS_COMPRESS) => d.info = "COMPRESS".into(),
        ("compressed", NS_COMPRESS) => d.info = "COMPRESSED".into(),
        _ => {
            // Unknown to us: say what it is, name and namespace, no alarm.
            d.info = local.to_uppercase();
            if !ns.is_empty() {
                let _ = write!(d.info, "({})", short_ns(ns));
            }
            arrow(&mut d.info, el, dir);
        }
    }
    d
}

fn auth(el: El<'_, '_>, d: &mut Described) {
    let mech = el.attr("mechanism").unwrap_or("");
    d.info = format!("AUTH {mech}").trim_end().to_owned();
    // The user named in the initial response (PLAIN: RFC 4616 §2; SCRAM
    // client-first: RFC 5802 §7; X-OAUTH2 / X-GOOGLE-TOKEN), never a secret.
    if !mech.is_empty()
        && let Some(user) = super::sasl::auth_user(mech, &el.text())
    {
        let _ = write!(d.info, " user={user}");
    }
}

/// A stanza's Info, sized once for the usual length (address, preview).
fn info_buf(start: &str) -> String {
    let mut s = String::with_capacity(INFO_CAPACITY);
    s.push_str(start);
    s
}

/// Room reserved for a stanza's Info: kind, an address and a preview.
const INFO_CAPACITY: usize = 96;

/// A `type='error'` stanza's condition (RFC 6120 §8.3): in the Info when
/// `text`, and as a note always.
fn stanza_error(el: El<'_, '_>, d: &mut Described, text: bool) {
    if el.attr("type") != Some("error") {
        return;
    }
    let cond = el
        .child("error")
        .and_then(|e| {
            e.children()
                .find(|c| c.ns() == NS_STANZA_ERRORS && c.local() != "text")
        })
        .map_or("undefined-condition", El::local);
    if text {
        push_all(&mut d.info, &[" ", cond]);
    }
    d.notes.push(Note::new(
        NoteKind::StanzaError,
        format!("{} error: {cond}", el.local()),
    ));
}

/// A stanza's `type` when it is one the RFCs define: messages (RFC 6121
/// §5.2.2), presence (RFC 6121 §4.7.1), IQs (RFC 6120 §8.2.3), and
/// errors of all three (RFC 6120 §8.3).
fn known_type(el: El<'_, '_>) -> Option<&'static str> {
    Some(match el.attr("type")? {
        "chat" => "chat",
        "error" => "error",
        "groupchat" => "groupchat",
        "headline" => "headline",
        "normal" => "normal",
        "probe" => "probe",
        "subscribe" => "subscribe",
        "subscribed" => "subscribed",
        "unavailable" => "unavailable",
        "unsubscribe" => "unsubscribe",
        "unsubscribed" => "unsubscribed",
        "get" => "get",
        "set" => "set",
        "result" => "result",
        _ => return None,
    })
}

/// A message (RFC 6121 §5): its facts, and its Info when `text`.
fn message(el: El<'_, '_>, dir: Dir, d: &mut Described, text: bool) {
    d.stanza = true;
    d.facts.stanza = Some(StanzaKind::Message);
    d.facts.typ = known_type(el);
    let body = el.child("body");
    if let Some(body) = body {
        d.has_body = true;
        d.facts.body_bytes = body.text_len() as u64;
    }
    // XEP-0085: the chat state is a child in its own namespace.
    d.chat_state = el
        .children()
        .filter(|c| c.ns() == NS_CHATSTATES)
        .find_map(|c| ChatState::from_local(c.local()));
    if text {
        d.info = info_buf("MESSAGE");
        arrow(&mut d.info, el, dir);
        if let Some(body) = body {
            push_quoted_pieces(&mut d.info, body.text_pieces(), 24);
        }
        if let Some(cs) = d.chat_state {
            push_all(&mut d.info, &[" [", cs.as_str(), "]"]);
        }
    }
    stanza_error(el, d, text);
}

/// A presence (RFC 6121 §4): its facts, and its Info when `text`.
fn presence(el: El<'_, '_>, dir: Dir, d: &mut Described, text: bool) {
    d.stanza = true;
    d.facts.stanza = Some(StanzaKind::Presence);
    d.facts.typ = known_type(el);
    let status = el.child("status");
    d.facts.has_status = status.is_some();
    if text {
        d.info = info_buf("PRESENCE");
        arrow(&mut d.info, el, dir);
        if let Some(t) = el.attr("type").filter(|t| *t != "error") {
            push_all(&mut d.info, &[" ", t]);
        }
        if let Some(show) = el.child("show") {
            push_all(&mut d.info, &[" ", show.text().trim()]);
        }
        if let Some(status) = status.filter(|s| s.text_len() > 0) {
            push_quoted_pieces(&mut d.info, status.text_pieces(), 24);
        }
    }
    stanza_error(el, d, text);
}

/// An IQ (RFC 6120 §8.2.3): its facts, and its Info when `text`.
fn iq(el: El<'_, '_>, dir: Dir, d: &mut Described, text: bool) {
    d.stanza = true;
    d.facts.stanza = Some(StanzaKind::Iq);
    d.facts.typ = known_type(el);
    let t = el.attr("type").unwrap_or("");
    let child = el.children().find(|c| c.local() != "error");
    if let Some(child) = child {
        let name = child.local();
        // XEP-0199: a ping request.
        if name == "ping" && child.ns() == "urn:xmpp:ping" {
            d.facts.ping = true;
        }
        // RFC 6121 §2: a roster result lists its items.
        if name == "query" && child.ns() == "jabber:iq:roster" && t == "result" {
            let items = child.children().filter(|c| c.local() == "item").count();
            d.facts.roster_items = Some(u32::try_from(items).unwrap_or(u32::MAX));
        }
    }
    if text {
        d.info = info_buf("IQ(");
        d.info.push_str(t);
        d.info.push(')');
        if let Some(child) = child {
            let name = child.local();
            if name == "query" {
                push_all(&mut d.info, &[" QUERY(", short_ns(child.ns()), ")"]);
            } else {
                d.info.push(' ');
                push_upper(&mut d.info, name);
            }
        }
        arrow(&mut d.info, el, dir);
    }
    stanza_error(el, d, text);
}

/// `name.to_uppercase()` appended to `out` (ASCII names, the usual ones,
/// without a temporary string).
fn push_upper(out: &mut String, name: &str) {
    if name.is_ascii() {
        out.extend(name.chars().map(|c| c.to_ascii_uppercase()));
    } else {
        out.push_str(&name.to_uppercase());
    }
}

/// `parts` appended to `out` (what `write!` does here, without the
/// formatting machinery: this is on every stanza).
fn push_all(out: &mut String, parts: &[&str]) {
    for p in parts {
        out.push_str(p);
    }
}

/// The first `max` characters of a text on one line, with `…` when cut.
#[must_use]
pub fn preview(text: &str, max: usize) -> String {
    let mut out = String::new();
    push_preview(&mut out, text, max);
    out
}

/// [`preview`] appended to `out`.
pub fn push_preview(out: &mut String, text: &str, max: usize) {
    let mut n = 0;
    preview_piece(out, text, max, &mut n);
}

/// One piece of a text previewed, `n` characters of the text having been
/// written already; false once the preview is cut (`…` written).
fn preview_piece(out: &mut String, mut piece: &str, max: usize, n: &mut usize) -> bool {
    loop {
        // Printable ASCII (the usual text) is one byte per character and
        // copied as it is; anything else goes one character at a time.
        let room = max.saturating_sub(*n);
        let plain = piece
            .bytes()
            .take(room)
            .take_while(|b| (0x20..0x7f).contains(b))
            .count();
        let (head, rest) = piece.split_at_checked(plain).unwrap_or((piece, ""));
        out.push_str(head);
        *n += plain;
        let mut chars = rest.chars();
        let Some(c) = chars.next() else {
            return true;
        };
        if *n >= max {
            out.push('…');
            return false;
        }
        out.push(if c.is_control() { ' ' } else { c });
        *n += 1;
        piece = chars.as_str();
    }
}

/// ` "preview"` appended to `out`.
fn push_quoted(out: &mut String, text: &str, max: usize) {
    push_quoted_pieces(out, std::iter::once(text), max);
}

/// [`push_quoted`] of a text given in pieces (read without joining them).
fn push_quoted_pieces<'p>(out: &mut String, pieces: impl Iterator<Item = &'p str>, max: usize) {
    out.push_str(" \"");
    let mut n = 0;
    for piece in pieces {
        if !preview_piece(out, piece, max, &mut n) {
            break;
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::element::{Scope, parse};

    fn el(x: &str) -> Element {
        let scope = Scope {
            default_ns: "jabber:client".into(),
            prefixes: vec![("stream".into(), NS_STREAMS.into())],
        };
        parse(x.as_bytes(), &scope, false).unwrap()
    }

    /// The character-at-a-time preview that `preview_piece` speeds up.
    fn preview_charwise(text: &str, max: usize) -> String {
        let mut out = String::new();
        for (n, c) in text.chars().enumerate() {
            if n == max {
                out.push('…');
                break;
            }
            out.push(if c.is_control() { ' ' } else { c });
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Whole or in pieces, the preview is the character-wise one.
        #[test]
        fn preview_in_pieces_is_charwise(
            text in "[a-z \\t\\n\\x7f\\u{80}\\u{9f}é😀<&]{0,40}",
            cuts in proptest::collection::vec(0usize..41, 0..4),
            max in 0usize..30,
        ) {
            let want = preview_charwise(&text, max);
            proptest::prop_assert_eq!(preview(&text, max), want.clone());
            let mut at: Vec<usize> = cuts
                .into_iter()
                .map(|c| c.min(text.len()))
                .filter(|&c| text.is_char_boundary(c))
                .collect();
            at.push(0);
            at.push(text.len());
            at.sort_unstable();
            at.dedup();
            let pieces: Vec<&str> = at.windows(2).map(|w| &text[w[0]..w[1]]).collect();
            let mut out = String::new();
            push_quoted_pieces(&mut out, pieces.into_iter(), max);
            proptest::prop_assert_eq!(out, format!(" \"{want}\""));
        }
    }

    #[test]
    fn wireshark_words() {
        let c = Dir::ClientToServer;
        let s = Dir::ServerToClient;
        assert_eq!(
            describe(
                &el("<iq type='get' to='cs-xmpp.lan'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>"),
                c
            )
            .info,
            "IQ(get) QUERY(disco#items) > cs-xmpp.lan"
        );
        assert_eq!(
            describe(
                &el("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>"),
                c
            )
            .info,
            "IQ(get) QUERY(jabber:iq:roster)"
        );
        assert_eq!(
            describe(
                &el("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>"),
                c
            )
            .info,
            "IQ(set) BIND"
        );
        assert_eq!(
            describe(&el("<iq type='result' from='tom@x' to='tom@x/r'/>"), s).info,
            "IQ(result) < tom@x"
        );
        assert_eq!(
            describe(&el("<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"), s).info,
            "FEATURES"
        );
        assert_eq!(
            describe(
                &el("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"),
                s
            )
            .info,
            "SUCCESS"
        );
    }

    /// The counts-only description is the full one but the stanzas' Info.
    #[test]
    fn counts_describe_all_but_the_stanza_info() {
        for (x, stanza) in [
            (
                "<message type='chat' to='a@b'><body>hi</body><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
                true,
            ),
            ("<presence type='odd'><status>x</status></presence>", true),
            (
                "<iq type='result' id='r'><query xmlns='jabber:iq:roster'><item jid='a@b'/></query></iq>",
                true,
            ),
            (
                "<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>",
                true,
            ),
            (
                "<message type='error'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
                true,
            ),
            (
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>",
                false,
            ),
            ("<a xmlns='urn:xmpp:sm:3' h='12'/>", false),
        ] {
            let e = el(x);
            let root = Tree::from_element(&e);
            let full = describe_el(root.root(), Dir::ClientToServer);
            let counts = describe_counts(root.root(), Dir::ClientToServer);
            assert_eq!(counts.kind(), full.kind(), "{x}");
            assert_eq!(counts.chat_state, full.chat_state, "{x}");
            assert_eq!(counts.has_body, full.has_body, "{x}");
            assert_eq!(counts.facts, full.facts, "{x}");
            assert_eq!(counts.notes, full.notes, "{x}");
            assert_eq!(full.facts.stanza.is_some(), stanza, "{x}");
            assert!(!full.info.is_empty(), "{x}");
            assert_eq!(counts.info.is_empty(), stanza, "{x}");
        }
    }

    #[test]
    fn auth_plain_names_the_user_only() {
        // "\0juliet\0r0m30myr0m30"
        let d = describe(
            &el(
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>",
            ),
            Dir::ClientToServer,
        );
        assert_eq!(d.info, "AUTH PLAIN user=juliet");
        assert!(!d.info.contains("r0m30"));
    }

    #[test]
    fn message_chat_state_and_body() {
        let d = describe(
            &el(
                "<message to='romeo@example.com' type='chat'><body>Hello Romeo, how are you today?</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
            ),
            Dir::ClientToServer,
        );
        assert!(d.has_body);
        assert_eq!(d.chat_state, Some(ChatState::Active));
        assert_eq!(
            d.info,
            "MESSAGE > romeo@example.com \"Hello Romeo, how are you…\" [active]"
        );
        let d = describe(
            &el(
                "<message from='a@b/c'><paused xmlns='http://jabber.org/protocol/chatstates'/></message>",
            ),
            Dir::ServerToClient,
        );
        assert_eq!(d.info, "MESSAGE < a@b/c [paused]");
        assert!(!d.has_body);
    }

    #[test]
    fn stream_level_elements_wireshark_misses() {
        let d = describe(
            &el(
                "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            ),
            Dir::ServerToClient,
        );
        assert_eq!(d.info, "STREAM ERROR conflict");
        assert_eq!(d.notes[0].kind, NoteKind::StreamError);
        assert_eq!(
            describe(
                &el("<a xmlns='urn:xmpp:sm:3' h='12'/>"),
                Dir::ClientToServer
            )
            .info,
            "SM a h=12"
        );
        assert_eq!(
            describe(
                &el("<inactive xmlns='urn:xmpp:csi:0'/>"),
                Dir::ClientToServer
            )
            .info,
            "CSI inactive"
        );
    }

    #[test]
    fn presence_and_errors() {
        let d = describe(
            &el(
                "<presence from='juliet@example.com/balcony'><show>away</show><status>in a meeting</status></presence>",
            ),
            Dir::ServerToClient,
        );
        assert_eq!(
            d.info,
            "PRESENCE < juliet@example.com/balcony away \"in a meeting\""
        );
        let d = describe(
            &el(
                "<iq type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
            ),
            Dir::ServerToClient,
        );
        assert_eq!(d.info, "IQ(error) item-not-found");
        assert_eq!(d.notes[0].kind, NoteKind::StanzaError);
    }
}

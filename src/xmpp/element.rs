//! One complete top-level unit (cut out by the framer) parsed with quick-xml
//! into a small owned tree with resolved namespaces.
//!
//! A stanza parsed alone lacks the namespace declarations made on the stream
//! header (RFC 6120 §4.8: `jabber:client` / `jabber:server` as the default
//! namespace, the `stream` prefix, often `db` for dialback), so the header's
//! declarations are passed in as a [`Scope`].
//!
//! Entities: only the five predefined ones and character references are
//! resolved (XML 1.0 §4.6, §4.1). XMPP forbids DTDs (RFC 6120 §11.1), so any
//! other reference is kept literally and never expanded.

use std::borrow::Cow;
use std::sync::Arc;

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// The namespace of the stream root (RFC 6120 §4.8.1).
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";

/// Namespace declarations in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub default_ns: Arc<str>,
    /// (prefix, namespace)
    pub prefixes: Vec<(String, Arc<str>)>,
}

impl Scope {
    fn lookup(&self, prefix: &str) -> Option<&str> {
        match prefix {
            "xml" => Some("http://www.w3.org/XML/1998/namespace"),
            _ => self
                .prefixes
                .iter()
                .rev()
                .find(|(p, _)| p == prefix)
                .map(|(_, ns)| &**ns),
        }
    }

    /// The scope inside an element carrying these attributes.
    fn child(&self, attrs: &[(String, String)]) -> Cow<'_, Self> {
        if !attrs
            .iter()
            .any(|(k, _)| k == "xmlns" || k.starts_with("xmlns:"))
        {
            return Cow::Borrowed(self);
        }
        let mut s = self.clone();
        for (k, v) in attrs {
            if k == "xmlns" {
                s.default_ns = intern(v);
            } else if let Some(p) = k.strip_prefix("xmlns:") {
                s.prefixes.push((p.to_owned(), intern(v)));
            }
        }
        Cow::Owned(s)
    }
}

/// An element with its attributes (values unescaped), children and text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// Qualified name as written.
    pub name: String,
    /// Resolved namespace URI ("" when none), shared with the scope.
    pub ns: Arc<str>,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// Character data directly inside this element, entities resolved.
    pub text: String,
}

impl Element {
    /// Local part of the name.
    #[must_use]
    pub fn local(&self) -> &str {
        self.name.rsplit(':').next().unwrap_or(&self.name)
    }

    /// Attribute by qualified name.
    #[must_use]
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// First child with this local name (any namespace).
    #[must_use]
    pub fn child(&self, local: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.local() == local)
    }

    /// First child with this local name in this namespace.
    #[must_use]
    pub fn child_ns(&self, local: &str, ns: &str) -> Option<&Element> {
        self.children
            .iter()
            .find(|c| c.local() == local && &*c.ns == ns)
    }

    /// The scope declared by this element (for a stream header, the scope
    /// its children are parsed in).
    #[must_use]
    pub fn scope_inside(&self, outer: &Scope) -> Scope {
        outer.child(&self.attrs).into_owned()
    }
}

/// Why a unit could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset inside the unit.
    pub offset: u64,
    pub message: String,
}

/// Parse one complete unit. With `open_only`, the unit is a start tag left
/// open on purpose (a stream header) and only that tag is returned.
///
/// # Errors
/// The XML is not well-formed; the error carries the offset in the unit.
pub fn parse(bytes: &[u8], scope: &Scope, open_only: bool) -> Result<Element, ParseError> {
    // quick-xml checks UTF-8 as it reads each event, so valid input is not
    // validated twice; only a unit that fails and is not UTF-8 pays for a
    // lossy copy (U+FFFD for the bad bytes) and a second try.
    match parse_from(Reader::from_reader(bytes), scope, open_only) {
        Err(_) if std::str::from_utf8(bytes).is_err() => {
            let text = String::from_utf8_lossy(bytes);
            parse_from(Reader::from_str(&text), scope, open_only)
        }
        r => r,
    }
}

fn parse_from(
    mut reader: Reader<&[u8]>,
    scope: &Scope,
    open_only: bool,
) -> Result<Element, ParseError> {
    let cfg = reader.config_mut();
    cfg.check_end_names = true;
    cfg.expand_empty_elements = false;
    cfg.trim_text_start = false;
    cfg.trim_text_end = false;

    // Stack of open elements with the scope inside each (None: the same as
    // outside, which is by far the common case, so nothing is cloned).
    let mut stack: Vec<(Element, Option<Scope>)> = Vec::new();
    let root = loop {
        let pos = reader.buffer_position();
        let ev = reader.read_event().map_err(|e| ParseError {
            offset: reader.error_position(),
            message: e.to_string(),
        })?;
        if let Event::Start(start) | Event::Empty(start) = &ev
            && start.name().as_ref().is_empty()
        {
            // quick-xml accepts `< />` and `<\t>…</>`; XML 1.0 §3.1 does
            // not: a tag starts with a Name right after `<`.
            return Err(ParseError {
                offset: pos,
                message: "element without a name ('<' followed by whitespace)".into(),
            });
        }
        match ev {
            Event::Start(start) => {
                let outer = current(&stack, scope);
                let (el, inner) = open(&start, outer);
                if open_only && stack.is_empty() {
                    return Ok(el);
                }
                stack.push((el, inner));
            }
            Event::Empty(start) => {
                let outer = current(&stack, scope);
                let (el, _) = open(&start, outer);
                match stack.last_mut() {
                    Some((parent, _)) => parent.children.push(el),
                    None => break el,
                }
            }
            Event::End(_) => {
                let Some((el, _)) = stack.pop() else {
                    return Err(ParseError {
                        offset: pos,
                        message: "close tag without an open element".into(),
                    });
                };
                match stack.last_mut() {
                    Some((parent, _)) => parent.children.push(el),
                    None => break el,
                }
            }
            Event::Text(t) => {
                if let Some((el, _)) = stack.last_mut() {
                    el.text.push_str(&t.into_inner());
                }
            }
            Event::CData(c) => {
                if let Some((el, _)) = stack.last_mut() {
                    el.text.push_str(&c.into_inner());
                }
            }
            Event::GeneralRef(r) => {
                if let Some((el, _)) = stack.last_mut() {
                    let resolved = match r.resolve_char_ref() {
                        Ok(Some(c)) => Some(c),
                        _ => predefined(&r.clone().into_inner()),
                    };
                    match resolved {
                        Some(c) => el.text.push(c),
                        None => {
                            el.text.push('&');
                            el.text.push_str(&r.into_inner());
                            el.text.push(';');
                        }
                    }
                }
            }
            Event::DocType(_) => {
                return Err(ParseError {
                    offset: pos,
                    message: "DTD not allowed in XMPP (RFC 6120 §11.1)".into(),
                });
            }
            Event::Eof => {
                return Err(ParseError {
                    offset: pos,
                    message: if stack.is_empty() {
                        "no element".into()
                    } else {
                        "element not closed".into()
                    },
                });
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    };
    Ok(root)
}

/// The scope in force at the top of the stack.
fn current<'a>(stack: &'a [(Element, Option<Scope>)], outer: &'a Scope) -> &'a Scope {
    stack
        .iter()
        .rev()
        .find_map(|(_, s)| s.as_ref())
        .unwrap_or(outer)
}

thread_local! {
    /// [`empty_ns`]'s copy for this thread.
    static EMPTY: Arc<str> = Arc::from("");
    /// [`intern`]'s copies for this thread.
    static COMMON: Vec<Arc<str>> = common_ns();
}

/// The empty namespace, shared (no allocation per event). One copy per
/// thread: every event takes and drops a reference, and a reference count
/// that the dissecting threads all change moved its cache line from core
/// to core on every event.
#[must_use]
pub fn empty_ns() -> Arc<str> {
    EMPTY.try_with(Arc::clone).unwrap_or_else(|_| Arc::from(""))
}

/// Shared copies of the namespaces seen all the time, so that an element
/// in one of them costs no allocation (per thread, as [`empty_ns`]).
pub(crate) fn intern(ns: &str) -> Arc<str> {
    COMMON
        .try_with(|common| common.iter().find(|c| &***c == ns).cloned())
        .ok()
        .flatten()
        .unwrap_or_else(|| Arc::from(ns))
}

/// The namespaces [`intern`] shares.
fn common_ns() -> Vec<Arc<str>> {
    [
        "jabber:client",
        "jabber:server",
        NS_STREAMS,
        "http://jabber.org/protocol/chatstates",
        "urn:xmpp:receipts",
        "urn:xmpp:ping",
        "jabber:iq:roster",
        "http://jabber.org/protocol/caps",
        "vcard-temp:x:update",
        "urn:xmpp:delay",
        "urn:xmpp:carbons:2",
        "urn:xmpp:forward:0",
        "http://jabber.org/protocol/disco#info",
        "http://jabber.org/protocol/disco#items",
        "urn:ietf:params:xml:ns:xmpp-stanzas",
        "urn:ietf:params:xml:ns:xmpp-sasl",
        "urn:ietf:params:xml:ns:xmpp-bind",
        "urn:ietf:params:xml:ns:xmpp-session",
        "urn:ietf:params:xml:ns:xmpp-tls",
        "",
    ]
    .into_iter()
    .map(Arc::from)
    .collect()
}

fn predefined(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => return None,
    })
}

fn open(start: &BytesStart<'_>, outer: &Scope) -> (Element, Option<Scope>) {
    let name = start.name().as_ref().to_owned();
    let mut attrs = Vec::new();
    // `with_checks(false)`: tolerate duplicate attributes and missing
    // whitespace between attributes (`version='1.0'to='x'` is seen on the
    // wire); the value is still unescaped.
    for a in start.attributes().with_checks(false).flatten() {
        let key = a.key.as_ref().to_owned();
        // Attribute-value normalisation and the predefined entities and
        // character references (XML 1.0 §3.3.3); anything else is kept raw.
        let plain = !a
            .value
            .bytes()
            .any(|b| matches!(b, b'&' | b'\t' | b'\n' | b'\r'));
        let value = if plain {
            // Nothing to normalise or unescape: the common case.
            a.value.clone().into_owned()
        } else {
            match a.normalized_value(XmlVersion::Implicit1_0) {
                Ok(v) => v.into_owned(),
                Err(_) => a.value.clone().into_owned(),
            }
        };
        attrs.push((key, value));
    }
    let inner = match outer.child(&attrs) {
        Cow::Borrowed(_) => None,
        Cow::Owned(s) => Some(s),
    };
    let in_force = inner.as_ref().unwrap_or(outer);
    let ns = match name.split_once(':') {
        Some((prefix, _)) => in_force.lookup(prefix).map_or_else(|| intern(""), intern),
        None => in_force.default_ns.clone(),
    };
    (
        Element {
            name,
            ns,
            attrs,
            children: Vec::new(),
            text: String::new(),
        },
        inner,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_scope() -> Scope {
        Scope {
            default_ns: intern("jabber:client"),
            prefixes: vec![("stream".into(), intern(NS_STREAMS))],
        }
    }

    #[test]
    fn message_with_children_and_entities() {
        let x = br#"<message to='romeo@example.net' type="chat"><body>h&#xe9;llo &amp; &lt;3 &#x1F600;</body><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"#;
        let e = parse(x, &client_scope(), false).unwrap();
        assert_eq!(e.name, "message");
        assert_eq!(&*e.ns, "jabber:client");
        assert_eq!(e.attr("to"), Some("romeo@example.net"));
        assert_eq!(e.attr("type"), Some("chat"));
        assert_eq!(e.child("body").unwrap().text, "héllo & <3 😀");
        let c = e.child("composing").unwrap();
        assert_eq!(&*c.ns, "http://jabber.org/protocol/chatstates");
    }

    #[test]
    fn prefixes_from_the_stream_header() {
        let e = parse(
            b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
            &client_scope(),
            false,
        )
        .unwrap();
        assert_eq!(&*e.ns, NS_STREAMS);
        assert_eq!(e.local(), "features");
        assert_eq!(&*e.children[0].ns, "urn:ietf:params:xml:ns:xmpp-bind");
    }

    #[test]
    fn stream_header_open_only_and_no_space_between_attributes() {
        let x = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'to='im.truphone.com'>";
        let e = parse(x, &Scope::default(), true).unwrap();
        assert_eq!(&*e.ns, NS_STREAMS);
        assert_eq!(e.attr("to"), Some("im.truphone.com"));
        let inside = e.scope_inside(&Scope::default());
        assert_eq!(&*inside.default_ns, "jabber:client");
    }

    #[test]
    fn unknown_entities_are_not_expanded() {
        let e = parse(
            b"<message><body>&lol9;</body></message>",
            &client_scope(),
            false,
        )
        .unwrap();
        assert_eq!(e.child("body").unwrap().text, "&lol9;");
        assert!(
            parse(
                b"<!DOCTYPE x [<!ENTITY a 'b'>]><x/>",
                &client_scope(),
                false
            )
            .is_err()
        );
    }

    #[test]
    fn malformed_is_an_error_with_offset() {
        let err = parse(b"<iq><query></iq>", &client_scope(), false).unwrap_err();
        assert!(err.offset > 0, "{err:?}");
        assert!(parse(b"<iq>", &client_scope(), false).is_err());
        assert!(parse(b"", &client_scope(), false).is_err());
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let e = parse(
            b"<message to='a\xffb'><body>x\xc3y</body></message>",
            &client_scope(),
            false,
        )
        .unwrap();
        assert_eq!(e.child("body").unwrap().text, "x\u{fffd}y");
        assert_eq!(e.attr("to"), Some("a\u{fffd}b"));
    }

    #[test]
    fn cdata_and_comments() {
        let e = parse(
            b"<message><body><![CDATA[<b>bold</b>]]><!-- c --></body></message>",
            &client_scope(),
            false,
        )
        .unwrap();
        assert_eq!(e.child("body").unwrap().text, "<b>bold</b>");
    }
}

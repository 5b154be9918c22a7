//! The XMPP layer: recognising a Jabber stream, framing it into top-level
//! units, parsing each unit and summarising it.

pub mod detail;
pub mod element;
pub mod framer;
pub mod info;
pub mod lite;
pub mod pairing;
pub mod sasl;

/// Well-known ports (IANA): c2s, s2s, and their direct-TLS twins (XEP-0368;
/// 5223 is the legacy SSL port Google Talk also offered).
pub const PORT_C2S: u16 = 5222;
pub const PORT_S2S: u16 = 5269;
pub const PORT_C2S_TLS: u16 = 5223;
pub const PORT_S2S_TLS: u16 = 5270;

/// What the first payload bytes of a direction look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstBytes {
    /// Opens a Jabber stream: `<?xml`, `<stream:stream` or the streams
    /// namespace near the start.
    JabberStream,
    /// Starts with markup (`<` after optional whitespace).
    Markup,
    /// Printable text holding markup: most likely a capture that began in
    /// the middle of an element.
    TextWithMarkup,
    /// A TLS record header (or, in a very short first segment, its start).
    Tls,
    /// Only whitespace (a keepalive): says nothing yet.
    Whitespace,
    /// Anything else (binary protocols, HTTP, …).
    Other,
}

/// How many leading bytes are examined to classify a flow.
pub const SNIFF_BYTES: usize = 512;

/// Classify the first payload bytes of a direction.
#[must_use]
pub fn sniff(data: &[u8]) -> FirstBytes {
    let head = data.get(..SNIFF_BYTES).unwrap_or(data);
    let trimmed = head.trim_ascii_start();
    if trimmed.starts_with(b"<?xml")
        || trimmed.starts_with(b"<stream:stream")
        || memchr::memmem::find(head, b"http://etherx.jabber.org/streams").is_some()
    {
        return FirstBytes::JabberStream;
    }
    if looks_like_tls_start(head) {
        return FirstBytes::Tls;
    }
    if trimmed.is_empty() {
        return FirstBytes::Whitespace;
    }
    if trimmed.first() == Some(&b'<') {
        return FirstBytes::Markup;
    }
    let printable = head
        .iter()
        .all(|&b| b >= 0x20 || matches!(b, b'\t' | b'\r' | b'\n'));
    let text = std::str::from_utf8(head).is_ok()
        || std::str::from_utf8(head).is_err_and(|e| e.error_len().is_none());
    if printable && text && memchr::memchr(b'<', head).is_some() {
        FirstBytes::TextWithMarkup
    } else {
        FirstBytes::Other
    }
}

/// A TLS record header, or as much of one as a short segment holds
/// (RFC 8446 §5.1: type 20..=24, then version 3.x).
fn looks_like_tls_start(b: &[u8]) -> bool {
    match b {
        [t, 3, v, ..] => (20..=24).contains(t) && *v <= 4,
        [t, 3] | [t] => (20..=24).contains(t),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing() {
        assert_eq!(sniff(b"<?xml version='1.0'?>"), FirstBytes::JabberStream);
        assert_eq!(
            sniff(b"<stream:stream to='x' xmlns:stream='http://etherx.jabber.org/streams'>"),
            FirstBytes::JabberStream
        );
        assert_eq!(sniff(b"<iq type='get'/>"), FirstBytes::Markup);
        assert_eq!(
            sniff(b"ody>hi</body></message>"),
            FirstBytes::TextWithMarkup
        );
        assert_eq!(sniff(b"ED\0\x01\0\0\x04"), FirstBytes::Other);
        assert_eq!(sniff(b"\x16\x03\x01\x02\x00\x01"), FirstBytes::Tls);
        assert_eq!(sniff(b"GET / HTTP/1.1\r\n"), FirstBytes::Other);
        assert_eq!(
            sniff(b"\x16\x03"),
            FirstBytes::Tls,
            "a record header cut after 2 bytes"
        );
        assert_eq!(sniff(b" "), FirstBytes::Whitespace);
        assert_eq!(sniff(b"\r\n"), FirstBytes::Whitespace);
        assert_eq!(
            sniff(b"HTTP/1.1 200 OK\r\n\r\n<message/>"),
            FirstBytes::TextWithMarkup
        );
    }
}

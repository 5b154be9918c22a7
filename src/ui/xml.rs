//! Pretty-printing one event's XML as coloured, indented lines.
//!
//! A tolerant lexer (the text may be a lone stream header, cut short, or not
//! well-formed): tags, attributes, text, comments/PIs/CDATA. An element
//! holding only text stays on one line (`<body>Hi</body>`); the masking
//! marker of SASL secrets is highlighted.

use ratatui::style::Style;
use ratatui::text::{Line, Span};

use super::theme::Theme;

/// The dissector's replacement for a secret.
pub use crate::xmpp::sasl::MASK;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok<'a> {
    Open {
        name: &'a str,
        attrs: Vec<(&'a str, &'a str)>,
        empty: bool,
    },
    Close(&'a str),
    Text(&'a str),
    /// `<?…?>`, `<!--…-->`, `<![CDATA[…]]>`, `<!…>`, or anything not lexable.
    Special(&'a str),
}

fn lex(s: &str) -> Vec<Tok<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    let b = s.as_bytes();
    while i < b.len() {
        let rest = s.get(i..).unwrap_or_default();
        if !rest.starts_with('<') {
            let end = rest.find('<').map_or(s.len(), |j| i + j);
            out.push(Tok::Text(s.get(i..end).unwrap_or_default()));
            i = end;
            continue;
        }
        let special_end = |open: &str, close: &str| -> Option<usize> {
            rest.starts_with(open)
                .then(|| rest.find(close).map_or(s.len(), |j| i + j + close.len()))
        };
        if let Some(end) = special_end("<!--", "-->")
            .or_else(|| special_end("<![CDATA[", "]]>"))
            .or_else(|| special_end("<?", "?>"))
            .or_else(|| special_end("<!", ">"))
        {
            out.push(Tok::Special(s.get(i..end).unwrap_or_default()));
            i = end;
            continue;
        }
        if let Some(r) = rest.strip_prefix("</") {
            let end = r.find('>').map_or(s.len(), |j| i + 2 + j + 1);
            let name = r
                .get(..r.find('>').unwrap_or(r.len()))
                .unwrap_or_default()
                .trim();
            out.push(Tok::Close(name));
            i = end;
            continue;
        }
        match lex_open(rest) {
            Some((tok, used)) => {
                out.push(tok);
                i += used;
            }
            None => {
                // Not a tag we understand: the rest as it is.
                out.push(Tok::Special(rest));
                break;
            }
        }
    }
    out
}

/// A start tag at the beginning of `s`: the token and its length.
fn lex_open(s: &str) -> Option<(Tok<'_>, usize)> {
    let b = s.as_bytes();
    let is_name_end = |c: u8| c.is_ascii_whitespace() || c == b'>' || c == b'/';
    let mut i = 1;
    while i < b.len() && !is_name_end(*b.get(i)?) {
        i += 1;
    }
    let name = s.get(1..i)?;
    if name.is_empty() {
        return None;
    }
    let mut attrs = Vec::new();
    loop {
        while i < b.len() && b.get(i)?.is_ascii_whitespace() {
            i += 1;
        }
        match b.get(i) {
            None => return None,
            Some(b'>') => {
                return Some((
                    Tok::Open {
                        name,
                        attrs,
                        empty: false,
                    },
                    i + 1,
                ));
            }
            Some(b'/') if b.get(i + 1) == Some(&b'>') => {
                return Some((
                    Tok::Open {
                        name,
                        attrs,
                        empty: true,
                    },
                    i + 2,
                ));
            }
            Some(_) => {
                let start = i;
                while i < b.len()
                    && *b.get(i)? != b'='
                    && !b.get(i)?.is_ascii_whitespace()
                    && *b.get(i)? != b'>'
                {
                    i += 1;
                }
                let key = s.get(start..i)?;
                while i < b.len() && b.get(i)?.is_ascii_whitespace() {
                    i += 1;
                }
                if b.get(i) != Some(&b'=') {
                    return None;
                }
                i += 1;
                while i < b.len() && b.get(i)?.is_ascii_whitespace() {
                    i += 1;
                }
                let q = *b.get(i)?;
                if q != b'\'' && q != b'"' {
                    return None;
                }
                let vstart = i;
                i += 1;
                while i < b.len() && *b.get(i)? != q {
                    i += 1;
                }
                if i >= b.len() {
                    return None;
                }
                i += 1;
                attrs.push((key, s.get(vstart..i)?));
            }
        }
    }
}

fn open_spans(t: Theme, name: &str, attrs: &[(&str, &str)], empty: bool) -> Vec<Span<'static>> {
    let mut v = vec![
        Span::styled("<", t.xml_punct()),
        Span::styled(name.to_owned(), t.xml_tag()),
    ];
    for (k, val) in attrs {
        v.push(Span::raw(" "));
        v.push(Span::styled((*k).to_owned(), t.xml_attr()));
        v.push(Span::styled("=", t.xml_punct()));
        v.push(Span::styled((*val).to_owned(), t.xml_value()));
    }
    v.push(Span::styled(if empty { "/>" } else { ">" }, t.xml_punct()));
    v
}

fn close_spans(t: Theme, name: &str) -> Vec<Span<'static>> {
    vec![
        Span::styled("</", t.xml_punct()),
        Span::styled(name.to_owned(), t.xml_tag()),
        Span::styled(">", t.xml_punct()),
    ]
}

/// Text, with the masking marker set apart.
fn text_spans(t: Theme, s: &str) -> Vec<Span<'static>> {
    let mut v = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(MASK) {
        if i > 0 {
            v.push(Span::styled(
                rest.get(..i).unwrap_or_default().to_owned(),
                t.xml_text(),
            ));
        }
        v.push(Span::styled(MASK, t.masked()));
        rest = rest.get(i + MASK.len()..).unwrap_or_default();
    }
    if !rest.is_empty() {
        v.push(Span::styled(rest.to_owned(), t.xml_text()));
    }
    v
}

/// A `key: value` line of the decoded details (indent kept).
#[must_use]
pub fn detail_line(l: &str, t: Theme) -> Line<'static> {
    let body = l.trim_start();
    let indent = l.len() - body.len();
    let (key, value) = match body.find(": ") {
        Some(i) => (
            body.get(..=i).unwrap_or_default(),
            body.get(i + 1..).unwrap_or_default(),
        ),
        None if body.ends_with(':') => (body, ""),
        None => ("", body),
    };
    let mut spans = vec![Span::styled(key.to_owned(), t.xml_attr())];
    spans.extend(text_spans(t, value));
    line(indent, spans)
}

fn line(indent: usize, spans: Vec<Span<'static>>) -> Line<'static> {
    let mut all = Vec::with_capacity(spans.len() + 1);
    if indent > 0 {
        all.push(Span::raw(" ".repeat(indent)));
    }
    all.extend(spans);
    Line::from(all)
}

/// Pretty-print `xml`, each line indented by `base` spaces plus two per level.
#[must_use]
pub fn pretty(xml: &str, base: usize, t: Theme) -> Vec<Line<'static>> {
    let toks = lex(xml);
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(tok) = toks.get(i) {
        let ind = base + depth * 2;
        match tok {
            Tok::Open { name, attrs, empty } => {
                let mut spans = open_spans(t, name, attrs, *empty);
                if *empty {
                    out.push(line(ind, spans));
                    i += 1;
                    continue;
                }
                // <a>text</a> and <a></a> on one line.
                match (toks.get(i + 1), toks.get(i + 2)) {
                    (Some(Tok::Text(txt)), Some(Tok::Close(c)))
                        if c == name && !txt.contains('\n') =>
                    {
                        spans.extend(text_spans(t, txt));
                        spans.extend(close_spans(t, c));
                        out.push(line(ind, spans));
                        i += 3;
                    }
                    (Some(Tok::Close(c)), _) if c == name => {
                        spans.extend(close_spans(t, c));
                        out.push(line(ind, spans));
                        i += 2;
                    }
                    _ => {
                        out.push(line(ind, spans));
                        depth += 1;
                        i += 1;
                    }
                }
            }
            Tok::Close(name) => {
                depth = depth.saturating_sub(1);
                out.push(line(base + depth * 2, close_spans(t, name)));
                i += 1;
            }
            Tok::Text(txt) => {
                for l in txt.lines() {
                    let l = l.trim();
                    if !l.is_empty() {
                        out.push(line(ind, text_spans(t, l)));
                    }
                }
                i += 1;
            }
            Tok::Special(s) => {
                for l in s.lines() {
                    out.push(line(ind, vec![Span::styled(l.to_owned(), t.xml_special())]));
                }
                i += 1;
            }
        }
    }
    if out.is_empty() && !xml.trim().is_empty() {
        out.push(line(base, text_spans(t, xml.trim())));
    }
    out
}

/// Split spans so that every match of `re` gets `hit` on top of its style.
#[must_use]
pub fn highlight(l: Line<'static>, re: &regex::Regex, hit: Style) -> Line<'static> {
    let text: String = l.spans.iter().map(|s| s.content.as_ref()).collect();
    let ranges: Vec<(usize, usize)> = re
        .find_iter(&text)
        .filter(|m| !m.is_empty())
        .map(|m| (m.start(), m.end()))
        .collect();
    if ranges.is_empty() {
        return l;
    }
    let mut out = Vec::new();
    let mut pos = 0;
    for sp in l.spans {
        let s = sp.content.as_ref();
        let (a, b) = (pos, pos + s.len());
        let mut cut = a;
        for &(hs, he) in &ranges {
            let (hs, he) = (hs.max(a), he.min(b));
            if hs >= he {
                continue;
            }
            if hs > cut {
                out.push(Span::styled(
                    s.get(cut - a..hs - a).unwrap_or_default().to_owned(),
                    sp.style,
                ));
            }
            out.push(Span::styled(
                s.get(hs - a..he - a).unwrap_or_default().to_owned(),
                sp.style.patch(hit),
            ));
            cut = he;
        }
        if cut < b {
            out.push(Span::styled(
                s.get(cut - a..).unwrap_or_default().to_owned(),
                sp.style,
            ));
        }
        pos = b;
    }
    Line::from(out)
}

/// The plain text of a line.
#[must_use]
pub fn plain(l: &Line<'_>) -> String {
    l.spans.iter().map(|s| s.content.as_ref()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(xml: &str) -> Vec<String> {
        pretty(xml, 0, Theme { color: false })
            .iter()
            .map(plain)
            .collect()
    }

    #[test]
    fn indents_and_keeps_text_elements_on_one_line() {
        let got = text(
            "<message to='bob@localhost' type='chat' id='alice-7'><body>Hi Bob!</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
        );
        assert_eq!(
            got,
            vec![
                "<message to='bob@localhost' type='chat' id='alice-7'>",
                "  <body>Hi Bob!</body>",
                "  <active xmlns='http://jabber.org/protocol/chatstates'/>",
                "</message>",
            ]
        );
    }

    #[test]
    fn stream_header_and_decl_and_empty() {
        let got =
            text("<?xml version='1.0'?><stream:stream to=\"localhost\" xmlns='jabber:client'>");
        assert_eq!(
            got,
            vec![
                "<?xml version='1.0'?>",
                "<stream:stream to=\"localhost\" xmlns='jabber:client'>"
            ]
        );
        assert_eq!(text("<a></a>"), vec!["<a></a>"]);
        assert_eq!(text("</stream:stream>"), vec!["</stream:stream>"]);
    }

    #[test]
    fn tolerates_garbage() {
        for s in [
            "<",
            "<a",
            "<a b",
            "<a b=",
            "<a b='x",
            "<a b=x>",
            "<!--",
            "<![CDATA[x",
            "</",
            "a<b>c",
            "<<>>",
            "<é ü='ö'>ñ</é>",
        ] {
            let _ = text(s);
        }
        assert_eq!(text("<a b='x"), vec!["<a b='x"]);
        assert_eq!(text("plain words"), vec!["plain words"]);
    }

    #[test]
    fn masked_secret_is_its_own_span() {
        let l = pretty(
            &format!(
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{MASK}</auth>"
            ),
            4,
            Theme { color: true },
        );
        assert_eq!(l.len(), 1);
        assert!(plain(&l[0]).starts_with("    <auth"));
        assert!(
            l[0].spans
                .iter()
                .any(|s| s.content == MASK && s.style == Theme { color: true }.masked())
        );
    }

    #[test]
    fn detail_lines() {
        let t = Theme { color: true };
        let l = detail_line(&format!("      password: {MASK}"), t);
        assert_eq!(plain(&l), format!("      password: {MASK}"));
        assert!(
            l.spans
                .iter()
                .any(|s| s.content == "password:" && s.style == t.xml_attr())
        );
        assert!(
            l.spans
                .iter()
                .any(|s| s.content == MASK && s.style == t.masked())
        );
        assert_eq!(plain(&detail_line("    sasl:", t)), "    sasl:");
        assert_eq!(plain(&detail_line("      -", t)), "      -");
    }

    #[test]
    fn highlight_splits_spans() {
        let l = Line::from(vec![Span::raw("hello "), Span::raw("world")]);
        let re = regex::Regex::new("o w").unwrap();
        let h = highlight(
            l,
            &re,
            Style::new().add_modifier(ratatui::style::Modifier::BOLD),
        );
        assert_eq!(plain(&h), "hello world");
        let bold: String = h
            .spans
            .iter()
            .filter(|s| {
                s.style
                    .add_modifier
                    .contains(ratatui::style::Modifier::BOLD)
            })
            .map(|s| s.content.as_ref())
            .collect();
        assert_eq!(bold, "o w");
    }
}

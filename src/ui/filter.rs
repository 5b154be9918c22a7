//! The filter bar's little language.
//!
//! Terms separated by spaces, all of which must hold:
//!
//! | term | keeps packets … |
//! |------|-----------------|
//! | `host ADDR` | from or to this address (both directions, all its flows) |
//! | `host NAME` | from or to an address the capture names so (DNS answers, TLS SNI, stream domains) |
//! | `port N` | of flows with this TCP port on either side |
//! | `jid X` | of flows where this JID was seen (a bare JID matches any resource) |
//! | `kind K` | with an event of this kind: message, presence, iq, sasl, tls, stream, error, other |
//! | `type T` | with a stanza of this type: chat, get, result, unavailable, … |
//! | `flow N` | of this flow |
//! | `proto P` | whose protocol column is xmpp, tls, tcp or other |
//! | `notes` | with expert notes |
//! | anything else | whose Info contains it (case-insensitive; `"quoted words"` allowed) |
//!
//! `not` (or `!`) before a term negates it; `a|b` inside a value means either.

use std::net::IpAddr;

use regex::{Regex, RegexBuilder};

use super::index::{Cat, Index, NONE, Row, type_bit};
use crate::model::Proto;
use crate::names::Names;

/// One condition.
#[derive(Debug, Clone)]
pub enum Term {
    Host(Vec<IpAddr>),
    Port(Vec<u16>),
    Jid(Vec<String>),
    /// Bits of [`Cat::bit`].
    Kind(u8),
    /// Bits of [`super::index::TYPES`].
    Type(u16),
    Flow(Vec<u32>),
    Proto(Vec<Proto>),
    Notes,
    Text(Regex),
    Not(Box<Term>),
}

/// A parsed filter.
#[derive(Debug, Clone)]
pub struct Filter {
    pub text: String,
    pub terms: Vec<Term>,
    /// A `host` term named a host: its addresses may grow as the capture
    /// loads (the filter is parsed again then).
    pub names: bool,
}

fn words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut had_quote = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                had_quote = true;
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() || had_quote {
                    out.push(std::mem::take(&mut cur));
                }
                had_quote = false;
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err("a quote is not closed".into());
    }
    if !cur.is_empty() || had_quote {
        out.push(cur);
    }
    Ok(out)
}

fn alternatives<T>(
    key: &str,
    value: &str,
    what: &str,
    one: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, String> {
    value
        .split(['|', ','])
        .filter(|v| !v.is_empty())
        .map(|v| one(v).ok_or_else(|| format!("{key}: {v:?} is not {what}")))
        .collect::<Result<Vec<T>, String>>()
        .and_then(|v| {
            if v.is_empty() {
                Err(format!("{key} needs {what}"))
            } else {
                Ok(v)
            }
        })
}

const KEYWORDS: [&str; 7] = ["host", "port", "jid", "kind", "type", "flow", "proto"];

/// Names listed in the error for an unknown host name.
const KNOWN_LISTED: usize = 12;

/// A `host` value: addresses, or names the capture resolves.
fn hosts(value: &str, names: &Names, by_name: &mut bool) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for v in value.split(['|', ',']).filter(|v| !v.is_empty()) {
        if let Ok(a) = v.trim_start_matches('[').trim_end_matches(']').parse() {
            out.push(a);
            continue;
        }
        let addrs = names.resolve(v);
        if addrs.is_empty() {
            let (known, more) = names.known_some(KNOWN_LISTED);
            return Err(if known.is_empty() {
                format!(
                    "host: {v:?} is not an IP address, and the capture names no hosts (no DNS answer, TLS SNI or stream domain)"
                )
            } else {
                format!(
                    "host: {v:?} is not an IP address or a name the capture resolves; known: {}{}",
                    known.join(", "),
                    if more { ", …" } else { "" }
                )
            });
        }
        *by_name = true;
        out.extend(addrs);
    }
    if out.is_empty() {
        return Err("host needs an IP address or a name".into());
    }
    Ok(out)
}

/// Parse the filter bar's text. An empty text is `Ok(None)`. Host names
/// are not known: see [`parse_with`].
///
/// # Errors
/// A message saying what is wrong, for the filter bar.
pub fn parse(s: &str) -> Result<Option<Filter>, String> {
    parse_with(s, &Names::default())
}

/// Parse the filter bar's text, resolving `host NAME` with the names the
/// capture taught. An empty text is `Ok(None)`.
///
/// # Errors
/// A message saying what is wrong, for the filter bar.
pub fn parse_with(s: &str, names: &Names) -> Result<Option<Filter>, String> {
    let w = words(s)?;
    let mut by_name = false;
    let mut terms = Vec::new();
    let mut i = 0;
    let mut negate = false;
    while let Some(word) = w.get(i) {
        i += 1;
        let lower = word.to_ascii_lowercase();
        if lower == "not" || lower == "!" {
            negate = !negate;
            continue;
        }
        let (lower, word) = match lower.strip_prefix('!') {
            Some(rest) if !rest.is_empty() => {
                negate = !negate;
                (
                    rest.to_owned(),
                    word.get(1..).unwrap_or_default().to_owned(),
                )
            }
            _ => (lower.clone(), word.clone()),
        };
        let term = if KEYWORDS.contains(&lower.as_str()) {
            let Some(value) = w.get(i) else {
                return Err(format!(
                    "{lower} needs a value ({})",
                    match lower.as_str() {
                        "host" => "an IPv4 or IPv6 address, or a name seen in the capture",
                        "port" => "a TCP port",
                        "jid" => "a JID like alice@example.org",
                        "kind" => "message, presence, iq, sasl, tls, stream, error or other",
                        "type" =>
                            "chat, groupchat, normal, headline, get, set, result, error, available, unavailable, subscribe…",
                        "flow" => "a flow number",
                        _ => "xmpp, tls, tcp or other",
                    }
                ));
            };
            i += 1;
            match lower.as_str() {
                "host" => Term::Host(hosts(value, names, &mut by_name)?),
                "port" => Term::Port(alternatives("port", value, "a port number", |v| {
                    v.parse().ok()
                })?),
                "jid" => Term::Jid(alternatives("jid", value, "a JID", |v| {
                    (!v.is_empty()).then(|| v.to_owned())
                })?),
                "kind" => Term::Kind(
                    alternatives(
                        "kind",
                        value,
                        "a kind (message, presence, iq, sasl, tls, stream, error, other)",
                        Cat::parse,
                    )?
                    .iter()
                    .fold(0, |m, c| m | c.bit()),
                ),
                "type" => Term::Type(
                    alternatives(
                        "type",
                        value,
                        "a stanza type (chat, get, result, unavailable…)",
                        type_bit,
                    )?
                    .iter()
                    .fold(0, |m, b| m | b),
                ),
                "flow" => Term::Flow(alternatives("flow", value, "a flow number", |v| {
                    v.parse().ok()
                })?),
                _ => Term::Proto(alternatives(
                    "proto",
                    value,
                    "xmpp, tls, tcp or other",
                    |v| match v.to_ascii_lowercase().as_str() {
                        "xmpp" => Some(Proto::Xmpp),
                        "tls" => Some(Proto::Tls),
                        "tcp" => Some(Proto::Tcp),
                        "other" => Some(Proto::Other),
                        _ => None,
                    },
                )?),
            }
        } else if lower == "notes" || lower == "expert" {
            Term::Notes
        } else {
            let re = RegexBuilder::new(&regex::escape(&word))
                .case_insensitive(true)
                .build()
                .map_err(|e| e.to_string())?;
            Term::Text(re)
        };
        terms.push(if std::mem::take(&mut negate) {
            Term::Not(Box::new(term))
        } else {
            term
        });
    }
    if negate {
        return Err("`not` needs a term after it".into());
    }
    if terms.is_empty() {
        return Ok(None);
    }
    Ok(Some(Filter {
        text: s.trim().to_owned(),
        terms,
        names: by_name,
    }))
}

impl Term {
    fn matches(&self, idx: &Index, i: u32, r: &Row) -> bool {
        match self {
            Self::Host(hosts) => [r.src, r.dst]
                .iter()
                .filter(|id| **id != NONE)
                .filter_map(|id| idx.addr(*id))
                .any(|a| hosts.contains(&a)),
            Self::Port(ports) => idx
                .flow(r.flow)
                .is_some_and(|f| ports.contains(&f.client.1) || ports.contains(&f.server.1)),
            Self::Jid(jids) => idx
                .flow(r.flow)
                .is_some_and(|f| jids.iter().any(|j| f.has_jid(j))),
            Self::Kind(bits) => r.kinds & bits != 0,
            Self::Type(bits) => r.types & bits != 0,
            Self::Flow(flows) => flows.contains(&r.flow),
            Self::Proto(p) => p.contains(&r.proto()),
            Self::Notes => r.severity() > 0,
            Self::Text(re) => {
                if r.info != NONE && idx.extras(i).is_none() {
                    idx.with_string(r.info, |s| re.is_match(s))
                } else {
                    re.is_match(&idx.info(i))
                }
            }
            Self::Not(t) => !t.matches(idx, i, r),
        }
    }

    /// Does this term depend on flow summaries (which grow while loading)?
    fn uses_flows(&self) -> bool {
        match self {
            Self::Jid(_) => true,
            Self::Not(t) => t.uses_flows(),
            _ => false,
        }
    }
}

impl Filter {
    /// Does row `i` pass?
    #[must_use]
    pub fn matches(&self, idx: &Index, i: u32) -> bool {
        let Some(r) = idx.row(i) else { return false };
        self.terms.iter().all(|t| t.matches(idx, i, &r))
    }

    /// Must the view be rebuilt when flows change?
    #[must_use]
    pub fn uses_flows(&self) -> bool {
        self.terms.iter().any(Term::uses_flows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        parse(s).unwrap_err()
    }

    #[test]
    fn parses_terms() {
        assert!(parse("").unwrap().is_none());
        assert!(parse("   ").unwrap().is_none());
        let f = parse(
            "host 127.0.0.1 port 5222 kind message|presence type chat jid alice@localhost hello",
        )
        .unwrap()
        .unwrap();
        assert_eq!(f.terms.len(), 6);
        assert!(
            matches!(f.terms[2], Term::Kind(b) if b == Cat::Message.bit() | Cat::Presence.bit())
        );
        let f = parse("host ::1 not kind tls \"two words\"")
            .unwrap()
            .unwrap();
        assert!(matches!(&f.terms[1], Term::Not(t) if matches!(**t, Term::Kind(_))));
        assert!(matches!(&f.terms[2], Term::Text(r) if r.is_match("has TWO WORDS in it")));
        let f = parse("!notes flow 1,2").unwrap().unwrap();
        assert!(matches!(&f.terms[0], Term::Not(_)));
        assert!(matches!(&f.terms[1], Term::Flow(v) if v == &vec![1, 2]));
    }

    #[test]
    fn explains_errors() {
        assert!(err("host").contains("host needs a value"));
        assert!(err("host banana").contains("\"banana\" is not an IP address"));
        assert!(err("host ,").contains("host needs"));
        assert!(err("port 99999").contains("not a port number"));
        assert!(err("kind frobs").contains("not a kind"));
        assert!(err("type whatever").contains("not a stanza type"));
        assert!(err("\"open").contains("quote"));
        assert!(err("host 1.2.3.4 not").contains("not"));
    }

    #[test]
    fn host_names_from_the_capture() {
        let mut names = Names::default();
        // A DNS response (RFC 1035 §4.1): talk.example.com A 192.0.2.7.
        let mut dns = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        let qname = [
            4, b't', b'a', b'l', b'k', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o',
            b'm', 0,
        ];
        dns.extend_from_slice(&qname);
        dns.extend_from_slice(&[0, 1, 0, 1]);
        dns.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
        names.udp(53, &dns);
        let f = parse_with("host Talk.Example.com.", &names)
            .unwrap()
            .unwrap();
        assert!(f.names);
        assert!(
            matches!(&f.terms[0], Term::Host(v) if v == &vec!["192.0.2.7".parse::<IpAddr>().unwrap()])
        );
        let e = parse_with("host nowhere.example", &names).unwrap_err();
        assert!(e.contains("not an IP address"), "{e}");
        assert!(e.contains("known: talk.example.com"), "{e}");
        let e = err("host nowhere.example");
        assert!(e.contains("names no hosts"), "{e}");
        let f = parse_with("host 10.0.0.1|talk.example.com", &names)
            .unwrap()
            .unwrap();
        assert!(matches!(&f.terms[0], Term::Host(v) if v.len() == 2));
        assert!(!parse("host 10.0.0.1").unwrap().unwrap().names);
    }

    #[test]
    fn text_is_literal() {
        let f = parse("IQ(get)").unwrap().unwrap();
        assert!(
            matches!(&f.terms[0], Term::Text(r) if r.is_match("x iq(get) y") && !r.is_match("IQget"))
        );
    }
}

//! Names learnt from the capture itself, never from a resolver: DNS answers
//! (A, AAAA, CNAME chains, SRV targets; see [`crate::dns`]), TLS SNI and the
//! XMPP stream header's `to` / `from` domains (RFC 6120 §4.7.1-2).
//!
//! Bounded: at most [`MAX_NAMES`] names and [`MAX_ADDRS`] addresses are
//! remembered; past that new ones are ignored (the first learnt win).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use crate::dns::{self, Rdata};
use crate::model::{Dir, Event, EventKind};

/// Names remembered (owners, aliases, SRV owners).
pub const MAX_NAMES: usize = 100_000;
/// Addresses given a display name.
pub const MAX_ADDRS: usize = 100_000;
/// CNAME / SRV links followed when resolving one name.
const MAX_CHAIN: usize = 8;

/// Where a name came from (a DNS answer beats SNI beats a stream domain
/// for the display name of an address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Stream,
    Sni,
    Dns,
}

#[derive(Debug, Default, Clone)]
pub struct Names {
    /// Looked up twice per printed line: foldhash, randomly seeded.
    display: HashMap<IpAddr, (String, Source), foldhash::fast::RandomState>,
    addrs: BTreeMap<String, BTreeSet<IpAddr>>,
    /// alias → canonical name (CNAME) or SRV owner → targets.
    links: BTreeMap<String, BTreeSet<String>>,
}

fn norm(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

impl Names {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    fn add(&mut self, name: &str, addr: IpAddr, src: Source) {
        let name = norm(name);
        if name.is_empty() || name.len() > 255 {
            return;
        }
        if self.addrs.len() < MAX_NAMES || self.addrs.contains_key(&name) {
            self.addrs.entry(name.clone()).or_default().insert(addr);
        }
        match self.display.get(&addr) {
            Some((_, s)) if *s >= src => {}
            _ if self.display.len() < MAX_ADDRS || self.display.contains_key(&addr) => {
                self.display.insert(addr, (name, src));
            }
            _ => {}
        }
    }

    fn link(&mut self, from: &str, to: &str) {
        if self.links.len() < MAX_NAMES {
            self.links.entry(norm(from)).or_default().insert(norm(to));
        }
    }

    /// Learn from a UDP datagram: a DNS response from port 53.
    pub fn udp(&mut self, sport: u16, payload: &[u8]) {
        if sport != dns::PORT {
            return;
        }
        let Ok(resp) = dns::parse(payload) else {
            return;
        };
        for r in &resp.records {
            match &r.data {
                Rdata::Cname(c) => self.link(&r.name, c),
                Rdata::Srv { target, .. } => {
                    self.link(&r.name, target);
                    // RFC 6120 §3.2.1: the SRV owner names an XMPP domain.
                    if dns::is_xmpp_srv(&r.name)
                        && let Some(domain) = r.name.splitn(3, '.').nth(2)
                    {
                        self.link(domain, &r.name);
                    }
                }
                Rdata::Addr(_) => {}
            }
        }
        for r in &resp.records {
            if let Rdata::Addr(a) = r.data {
                // Show the name that was asked for when the chain leads
                // from it to this owner (RFC 1035 §3.6.2 CNAME chains).
                let shown = resp
                    .questions
                    .iter()
                    .find(|q| self.reaches(q, &r.name))
                    .cloned()
                    .unwrap_or_else(|| r.name.clone());
                // The first name added for an address is the one shown.
                self.add(&shown, a, Source::Dns);
                self.add(&r.name, a, Source::Dns);
            }
        }
    }

    fn reaches(&self, from: &str, to: &str) -> bool {
        let (from, to) = (norm(from), norm(to));
        let mut cur = vec![from];
        for _ in 0..=MAX_CHAIN {
            if cur.contains(&to) {
                return true;
            }
            cur = cur
                .iter()
                .filter_map(|c| self.links.get(c))
                .flatten()
                .cloned()
                .collect();
            if cur.is_empty() {
                return false;
            }
        }
        false
    }

    /// Learn from an event: SNI of a ClientHello, stream `to` / `from`.
    pub fn event(&mut self, e: &Event) {
        match e.kind {
            EventKind::StreamHeader => {
                // The client names the server's domain in `to`, the server
                // in `from` (RFC 6120 §4.7.1, §4.7.2).
                let (name, server) = match e.dir {
                    Dir::ClientToServer => (e.to.as_deref(), e.dst),
                    Dir::ServerToClient => (e.from.as_deref(), e.src),
                };
                if let Some(n) = name.filter(|n| !n.contains('@')) {
                    self.add(n, server, Source::Stream);
                }
            }
            EventKind::Tls if e.dir == Dir::ClientToServer => {
                if let Some(rest) = e.info.split("SNI=").nth(1) {
                    let sni: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                        .collect();
                    if !sni.is_empty() {
                        self.add(&sni, e.dst, Source::Sni);
                    }
                }
            }
            _ => {}
        }
    }

    /// The name to show for an address.
    #[must_use]
    pub fn name_of(&self, a: &IpAddr) -> Option<&str> {
        self.display.get(a).map(|(n, _)| n.as_str())
    }

    /// The addresses a name stands for: its own A/AAAA answers, SNI or
    /// stream domains, and those of its CNAME / SRV targets.
    #[must_use]
    pub fn resolve(&self, name: &str) -> BTreeSet<IpAddr> {
        let mut out = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut cur = vec![norm(name)];
        for _ in 0..=MAX_CHAIN {
            let mut next = Vec::new();
            for c in cur {
                if !seen.insert(c.clone()) {
                    continue;
                }
                if let Some(a) = self.addrs.get(&c) {
                    out.extend(a.iter().copied());
                }
                if let Some(l) = self.links.get(&c) {
                    next.extend(l.iter().cloned());
                }
            }
            if next.is_empty() {
                break;
            }
            cur = next;
        }
        out
    }

    /// Nothing learnt at all.
    #[must_use]
    pub fn is_blank(&self) -> bool {
        self.display.is_empty() && self.addrs.is_empty() && self.links.is_empty()
    }

    /// Take in what `other` learnt (later: the TUI's loader ships what
    /// each batch taught). The same bounds and precedence as learning it
    /// here.
    pub fn merge(&mut self, other: Names) {
        for (from, tos) in other.links {
            for to in tos {
                self.link(&from, &to);
            }
        }
        for (name, addrs) in other.addrs {
            if self.addrs.len() < MAX_NAMES || self.addrs.contains_key(&name) {
                self.addrs.entry(name).or_default().extend(addrs);
            }
        }
        for (addr, (name, src)) in other.display {
            match self.display.get(&addr) {
                Some((_, s)) if *s >= src => {}
                _ if self.display.len() < MAX_ADDRS || self.display.contains_key(&addr) => {
                    self.display.insert(addr, (name, src));
                }
                _ => {}
            }
        }
    }

    /// Up to `max` of the names the capture resolves, sorted, and whether
    /// there are more (cheaper than [`Self::known`] on a large capture).
    #[must_use]
    pub fn known_some(&self, max: usize) -> (Vec<String>, bool) {
        let mut v: Vec<String> = self.addrs.keys().take(max + 1).cloned().collect();
        v.extend(
            self.links
                .keys()
                .filter(|n| !self.addrs.contains_key(*n) && !self.resolve(n).is_empty())
                .take(max + 1)
                .cloned(),
        );
        v.sort();
        v.dedup();
        let more = v.len() > max;
        v.truncate(max);
        (v, more)
    }

    /// Every name the capture resolves to at least one address, sorted.
    #[must_use]
    pub fn known(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .addrs
            .keys()
            .chain(self.links.keys())
            .filter(|n| !self.resolve(n).is_empty())
            .cloned()
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_srv_and_display() {
        let mut n = Names::default();
        n.link("talk.google.com", "talk.l.google.com");
        n.add("talk.l.google.com", "1.2.3.4".parse().unwrap(), Source::Dns);
        n.link("_xmpp-client._tcp.gmail.com", "talk.google.com");
        n.link("gmail.com", "_xmpp-client._tcp.gmail.com");
        let a: IpAddr = "1.2.3.4".parse().unwrap();
        assert!(n.resolve("Talk.Google.com.").contains(&a));
        assert!(n.resolve("gmail.com").contains(&a));
        assert!(n.resolve("nope.example").is_empty());
        n.add("localhost", a, Source::Stream);
        assert_eq!(n.name_of(&a), Some("talk.l.google.com"));
        assert!(n.known().contains(&"gmail.com".to_owned()));
    }

    #[test]
    fn merge_and_known_some() {
        let a: IpAddr = "1.2.3.4".parse().unwrap();
        let b: IpAddr = "5.6.7.8".parse().unwrap();
        let mut first = Names::default();
        first.link("gmail.com", "talk.google.com");
        let mut second = Names::default();
        second.add("talk.google.com", a, Source::Dns);
        second.add("localhost", b, Source::Stream);
        let mut all = Names::default();
        assert!(all.is_blank());
        all.merge(first);
        assert!(all.resolve("gmail.com").is_empty());
        all.merge(second);
        assert!(!all.is_blank());
        assert!(all.resolve("gmail.com").contains(&a));
        assert_eq!(all.name_of(&b), Some("localhost"));
        let (names, more) = all.known_some(2);
        assert_eq!(names, ["gmail.com", "localhost"]);
        assert!(more);
        let (names, more) = all.known_some(10);
        assert_eq!(names, all.known());
        assert!(!more);
    }

    #[test]
    fn link_loops_end() {
        let mut n = Names::default();
        n.link("a", "b");
        n.link("b", "a");
        assert!(n.resolve("a").is_empty());
        assert!(!n.reaches("a", "c"));
    }
}

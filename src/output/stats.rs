//! `--stats`: what a capture holds, counted from the same events the other
//! printers show.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::dissect::Counters;
use crate::model::{ChatState, Dir, Event, EventKind, Facts, Note, Severity, StanzaKind, Tally};
use crate::xmpp::info::{NS_SASL, NS_TLS};

/// Counts by `type` attribute.
pub type ByType = BTreeMap<String, u64>;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub packets: u64,
    pub tcp_packets: u64,
    pub flows: u64,
    pub xmpp_flows: u64,
    pub tls_flows: u64,
    pub tcp_flows_5222: u64,
    pub max_concurrent_flows: usize,
    pub xml_declarations: u64,
    pub stream_headers_c2s: u64,
    pub stream_headers_s2c: u64,
    pub stream_features: u64,
    pub starttls: u64,
    pub proceed: u64,
    pub sasl_auths: ByType,
    pub sasl_plain_auths: u64,
    pub sasl_challenges: u64,
    pub sasl_responses: u64,
    pub sasl_successes: u64,
    pub sasl_failures: u64,
    pub messages: u64,
    pub message_types: ByType,
    pub messages_with_body: u64,
    pub body_decoded_bytes: u64,
    pub chatstate_messages: u64,
    pub chatstate_only_messages: u64,
    pub chatstates: ByType,
    pub presences: u64,
    pub presence_types: ByType,
    pub presence_unavailable: u64,
    pub presence_with_status: u64,
    pub iqs: u64,
    pub iq_types: ByType,
    pub iq_pings: u64,
    pub roster_results: u64,
    pub roster_items: u64,
    pub other_elements: ByType,
    pub whitespace_keepalives: u64,
    pub stream_closes_c2s: u64,
    pub stream_closes_s2c: u64,
    pub stream_errors: u64,
    pub malformed_elements: u64,
    pub tls_records: u64,
    pub notes: BTreeMap<String, u64>,
    pub notes_by_severity: BTreeMap<String, u64>,
    pub limits_hit: BTreeMap<String, u64>,
}

fn bump(map: &mut ByType, key: &str) {
    // Looked up first: the keys repeat, so this rarely allocates.
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

impl Stats {
    pub fn add_event(&mut self, e: &Event) {
        for n in &e.notes {
            self.add_note(n);
        }
        match e.kind {
            EventKind::XmlDecl => self.xml_declarations += 1,
            EventKind::StreamHeader => match e.dir {
                Dir::ClientToServer => self.stream_headers_c2s += 1,
                Dir::ServerToClient => self.stream_headers_s2c += 1,
            },
            EventKind::StreamEnd => match e.dir {
                Dir::ClientToServer => self.stream_closes_c2s += 1,
                Dir::ServerToClient => self.stream_closes_s2c += 1,
            },
            EventKind::Keepalive => self.whitespace_keepalives += 1,
            EventKind::Junk => self.malformed_elements += 1,
            EventKind::Tls => self.tls_records += 1,
            EventKind::Stanza => self.add_stanza(e),
            EventKind::Nonza => self.add_nonza(e),
        }
    }

    fn add_stanza(&mut self, e: &Event) {
        // The dissector says which stanza it is; an event built without
        // that fact (by hand) is known by its name.
        let kind =
            e.facts
                .stanza
                .unwrap_or_else(|| match e.name.rsplit(':').next().unwrap_or(&e.name) {
                    "message" => StanzaKind::Message,
                    "presence" => StanzaKind::Presence,
                    _ => StanzaKind::Iq,
                });
        self.count_stanza(kind, &e.facts, e.typ.as_deref(), e.has_body, e.chat_state);
    }

    /// A stanza reported as a [`Tally`] (the dissector always names its
    /// kind; one without is counted as an IQ, as an event without a name).
    pub fn add_tally(&mut self, t: &Tally) {
        let kind = t.facts.stanza.unwrap_or(StanzaKind::Iq);
        self.count_stanza(kind, &t.facts, t.typ.as_deref(), t.has_body, t.chat_state);
    }

    fn count_stanza(
        &mut self,
        kind: StanzaKind,
        facts: &Facts,
        typ: Option<&str>,
        has_body: bool,
        chat_state: Option<ChatState>,
    ) {
        let typ = typ.or(facts.typ);
        match kind {
            StanzaKind::Message => {
                self.messages += 1;
                // RFC 6121 §5.2.2: no type means "normal".
                bump(&mut self.message_types, typ.unwrap_or("normal"));
                if has_body {
                    self.messages_with_body += 1;
                    self.body_decoded_bytes += facts.body_bytes;
                }
                if let Some(cs) = chat_state {
                    self.chatstate_messages += 1;
                    if !has_body {
                        self.chatstate_only_messages += 1;
                    }
                    bump(&mut self.chatstates, cs.as_str());
                }
            }
            StanzaKind::Presence => {
                self.presences += 1;
                bump(&mut self.presence_types, typ.unwrap_or("available"));
                if typ == Some("unavailable") {
                    self.presence_unavailable += 1;
                }
                if facts.has_status {
                    self.presence_with_status += 1;
                }
            }
            StanzaKind::Iq => {
                self.iqs += 1;
                bump(&mut self.iq_types, typ.unwrap_or(""));
                if facts.ping {
                    self.iq_pings += 1;
                }
                if let Some(n) = facts.roster_items {
                    self.roster_results += 1;
                    self.roster_items += u64::from(n);
                }
            }
        }
    }

    fn add_nonza(&mut self, e: &Event) {
        let local = e.name.rsplit(':').next().unwrap_or(&e.name);
        match (local, &*e.ns) {
            ("features", crate::xmpp::element::NS_STREAMS) => self.stream_features += 1,
            ("error", crate::xmpp::element::NS_STREAMS) => self.stream_errors += 1,
            ("starttls", NS_TLS) => self.starttls += 1,
            ("proceed", NS_TLS) => self.proceed += 1,
            ("auth", NS_SASL) => {
                // The Info's second word (`AUTH PLAIN user=…`): elements
                // other than stanzas keep their Info in a counts-only run
                // ([`crate::dissect::Config::counts_only`]).
                let mech = e.info.split_whitespace().nth(1).unwrap_or("");
                bump(&mut self.sasl_auths, mech);
                if mech == "PLAIN" {
                    self.sasl_plain_auths += 1;
                }
            }
            ("challenge", NS_SASL) => self.sasl_challenges += 1,
            ("response", NS_SASL) => self.sasl_responses += 1,
            ("success", NS_SASL) => self.sasl_successes += 1,
            ("failure", NS_SASL) => self.sasl_failures += 1,
            _ => bump(&mut self.other_elements, &e.info),
        }
    }

    pub fn add_note(&mut self, n: &Note) {
        let name = n.kind.name();
        if n.kind.is_limit() {
            *self.limits_hit.entry(name.clone()).or_insert(0) += 1;
        }
        *self.notes.entry(name).or_insert(0) += 1;
        let sev = match n.severity {
            Severity::Chat => "chat",
            Severity::Note => "note",
            Severity::Warn => "warn",
            Severity::Error => "error",
        };
        *self.notes_by_severity.entry(sev.to_owned()).or_insert(0) += 1;
    }

    /// Add the figures another dissector's events gave (a shard of the
    /// parallel run). Every field is named, so a new one cannot be missed.
    pub fn merge(&mut self, o: Self) {
        fn sum(a: &mut BTreeMap<String, u64>, b: BTreeMap<String, u64>) {
            for (k, v) in b {
                *a.entry(k).or_default() += v;
            }
        }
        let Self {
            packets,
            tcp_packets,
            flows,
            xmpp_flows,
            tls_flows,
            tcp_flows_5222,
            max_concurrent_flows,
            xml_declarations,
            stream_headers_c2s,
            stream_headers_s2c,
            stream_features,
            starttls,
            proceed,
            sasl_auths,
            sasl_plain_auths,
            sasl_challenges,
            sasl_responses,
            sasl_successes,
            sasl_failures,
            messages,
            message_types,
            messages_with_body,
            body_decoded_bytes,
            chatstate_messages,
            chatstate_only_messages,
            chatstates,
            presences,
            presence_types,
            presence_unavailable,
            presence_with_status,
            iqs,
            iq_types,
            iq_pings,
            roster_results,
            roster_items,
            other_elements,
            whitespace_keepalives,
            stream_closes_c2s,
            stream_closes_s2c,
            stream_errors,
            malformed_elements,
            tls_records,
            notes,
            notes_by_severity,
            limits_hit,
        } = o;
        self.packets += packets;
        self.tcp_packets += tcp_packets;
        self.flows += flows;
        self.xmpp_flows += xmpp_flows;
        self.tls_flows += tls_flows;
        self.tcp_flows_5222 += tcp_flows_5222;
        // Not a sum: set from the merged counters.
        self.max_concurrent_flows = self.max_concurrent_flows.max(max_concurrent_flows);
        self.xml_declarations += xml_declarations;
        self.stream_headers_c2s += stream_headers_c2s;
        self.stream_headers_s2c += stream_headers_s2c;
        self.stream_features += stream_features;
        self.starttls += starttls;
        self.proceed += proceed;
        sum(&mut self.sasl_auths, sasl_auths);
        self.sasl_plain_auths += sasl_plain_auths;
        self.sasl_challenges += sasl_challenges;
        self.sasl_responses += sasl_responses;
        self.sasl_successes += sasl_successes;
        self.sasl_failures += sasl_failures;
        self.messages += messages;
        sum(&mut self.message_types, message_types);
        self.messages_with_body += messages_with_body;
        self.body_decoded_bytes += body_decoded_bytes;
        self.chatstate_messages += chatstate_messages;
        self.chatstate_only_messages += chatstate_only_messages;
        sum(&mut self.chatstates, chatstates);
        self.presences += presences;
        sum(&mut self.presence_types, presence_types);
        self.presence_unavailable += presence_unavailable;
        self.presence_with_status += presence_with_status;
        self.iqs += iqs;
        sum(&mut self.iq_types, iq_types);
        self.iq_pings += iq_pings;
        self.roster_results += roster_results;
        self.roster_items += roster_items;
        sum(&mut self.other_elements, other_elements);
        self.whitespace_keepalives += whitespace_keepalives;
        self.stream_closes_c2s += stream_closes_c2s;
        self.stream_closes_s2c += stream_closes_s2c;
        self.stream_errors += stream_errors;
        self.malformed_elements += malformed_elements;
        self.tls_records += tls_records;
        sum(&mut self.notes, notes);
        sum(&mut self.notes_by_severity, notes_by_severity);
        sum(&mut self.limits_hit, limits_hit);
    }

    pub fn set_counters(&mut self, c: &Counters) {
        self.packets = c.packets;
        self.tcp_packets = c.tcp_packets;
        self.flows = c.flows;
        self.xmpp_flows = c.xmpp_flows;
        self.tls_flows = c.tls_flows;
        self.tcp_flows_5222 = c.flows_5222;
        self.max_concurrent_flows = c.max_concurrent_flows;
    }

    /// A report a person reads.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "Packets:              {}", self.packets);
        let _ = writeln!(s, "TCP packets:          {}", self.tcp_packets);
        let _ = writeln!(
            s,
            "TCP flows:            {} (XMPP {}, TLS-only {}, to port 5222: {}, at most {} at once)",
            self.flows,
            self.xmpp_flows,
            self.tls_flows,
            self.tcp_flows_5222,
            self.max_concurrent_flows
        );
        let _ = writeln!(
            s,
            "Stream headers:       {} c2s, {} s2c (XML declarations {})",
            self.stream_headers_c2s, self.stream_headers_s2c, self.xml_declarations
        );
        let _ = writeln!(s, "Stream features:      {}", self.stream_features);
        let _ = writeln!(
            s,
            "STARTTLS / PROCEED:   {} / {}",
            self.starttls, self.proceed
        );
        let _ = writeln!(
            s,
            "SASL:                 auth {} {}, challenge {}, response {}, success {}, failure {}",
            self.sasl_auths.values().sum::<u64>(),
            fmt_map(&self.sasl_auths),
            self.sasl_challenges,
            self.sasl_responses,
            self.sasl_successes,
            self.sasl_failures
        );
        let _ = writeln!(
            s,
            "Messages:             {} {} with body {} ({} bytes of text)",
            self.messages,
            fmt_map(&self.message_types),
            self.messages_with_body,
            self.body_decoded_bytes
        );
        let _ = writeln!(
            s,
            "Chat states:          {} messages ({} without body) {}",
            self.chatstate_messages,
            self.chatstate_only_messages,
            fmt_map(&self.chatstates)
        );
        let _ = writeln!(
            s,
            "Presence:             {} {} with status {}",
            self.presences,
            fmt_map(&self.presence_types),
            self.presence_with_status
        );
        let _ = writeln!(
            s,
            "IQ:                   {} {} pings {}, roster results {} ({} items)",
            self.iqs,
            fmt_map(&self.iq_types),
            self.iq_pings,
            self.roster_results,
            self.roster_items
        );
        if !self.other_elements.is_empty() {
            let _ = writeln!(s, "Other elements:       {}", fmt_map(&self.other_elements));
        }
        let _ = writeln!(s, "Whitespace keepalives: {}", self.whitespace_keepalives);
        let _ = writeln!(
            s,
            "Stream ends:          {} c2s, {} s2c; stream errors {}",
            self.stream_closes_c2s, self.stream_closes_s2c, self.stream_errors
        );
        let _ = writeln!(s, "Malformed elements:   {}", self.malformed_elements);
        let _ = writeln!(s, "TLS records:          {}", self.tls_records);
        let _ = writeln!(
            s,
            "Expert notes:         {} {}",
            self.notes.values().sum::<u64>(),
            fmt_map(&self.notes_by_severity)
        );
        for (k, v) in &self.notes {
            let _ = writeln!(s, "  {k}: {v}");
        }
        if self.limits_hit.is_empty() {
            let _ = writeln!(s, "Limits hit:           none");
        } else {
            let _ = writeln!(s, "Limits hit:           {}", fmt_map(&self.limits_hit));
        }
        s
    }
}

fn fmt_map(m: &ByType) -> String {
    if m.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = m
        .iter()
        .map(|(k, v)| {
            if k.is_empty() {
                format!("(none) {v}")
            } else {
                format!("{k} {v}")
            }
        })
        .collect();
    format!("({})", parts.join(", "))
}

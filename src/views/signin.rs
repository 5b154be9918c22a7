//! `--signin`: each XMPP flow's sign-in, step by step (RFC 6120 §4-§7,
//! RFC 6121 §2.2 roster get and §4.2 initial presence), with the time from
//! the connection's first packet (the SYN) and the wait before each step.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;
use serde_json::Value;

use super::{Common, MAX_FLOWS, Style, s};
use crate::model::{Dir, Event, EventKind, Timestamp};
use crate::xmpp::detail::{NS_BIND, NS_ROSTER, NS_SESSION};

/// One step of a sign-in.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub step: &'static str,
    /// Seconds since the flow's first packet.
    pub at: f64,
    /// Seconds since the previous step.
    pub wait: f64,
    pub frame: u64,
    pub detail: String,
    pub ok: bool,
}

/// One flow's sign-in.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Flow {
    pub flow: u32,
    pub client: String,
    pub server: String,
    #[serde(skip)]
    start: Option<Timestamp>,
    #[serde(skip)]
    first_c2s: Option<Timestamp>,
    /// The first packet was a bare client packet (the SYN) followed by a
    /// server reply with no data: the handshake was captured.
    #[serde(skip)]
    syn_seen: bool,
    #[serde(skip)]
    xmpp: bool,
    pub steps: Vec<Step>,
    #[serde(skip)]
    done: Vec<&'static str>,
    #[serde(skip)]
    sasl_ok: bool,
    #[serde(skip)]
    tls_ok: bool,
    #[serde(skip)]
    last: Option<Timestamp>,
    #[serde(skip)]
    jid: Option<String>,
    pub missing: Vec<&'static str>,
}

/// The steps every client sign-in goes through; missing ones are listed.
const EXPECTED: [&str; 8] = [
    "TCP connect",
    "stream open",
    "features",
    "SASL",
    "restart",
    "bind",
    "roster",
    "initial presence",
];

#[derive(Debug, Default)]
pub struct Signin {
    flows: BTreeMap<u32, Flow>,
}

impl Flow {
    fn step(&mut self, step: &'static str, e: &Event, detail: String, ok: bool) {
        let start = self.start.unwrap_or(e.time);
        let last = self.last.unwrap_or(start);
        self.steps.push(Step {
            step,
            at: e.time.since(start),
            wait: e.time.since(last),
            frame: e.frame,
            detail,
            ok,
        });
        self.last = Some(e.time);
        self.done.push(step);
    }
    fn has(&self, step: &str) -> bool {
        self.done.contains(&step)
    }

    /// The full JID bound on this flow (RFC 6120 §7.6.1), once seen.
    #[must_use]
    pub fn jid(&self) -> Option<&str> {
        self.jid.as_deref()
    }

    /// Why an expected step is missing, for a reader.
    #[must_use]
    pub fn missing_reason(&self, step: &str) -> &'static str {
        if step == "TCP connect" {
            "not captured (the capture began after the connection opened)"
        } else if self.tls_ok && !self.sasl_ok {
            "not seen (inside TLS: give --keylog to see it)"
        } else {
            "not seen"
        }
    }
}

impl Signin {
    /// A frame of a flow: the first is taken as the SYN; the first server
    /// packet after a client packet without data completes the connect.
    pub fn packet(&mut self, flow: u32, dir: Dir, ts: Timestamp, no_events: bool) {
        if !self.flows.contains_key(&flow) && self.flows.len() >= MAX_FLOWS {
            return;
        }
        let f = self.flows.entry(flow).or_insert_with(|| Flow {
            flow,
            ..Flow::default()
        });
        if f.start.is_none() {
            f.start = Some(ts);
            if dir == Dir::ClientToServer && no_events {
                f.first_c2s = Some(ts);
            }
            return;
        }
        if dir == Dir::ServerToClient
            && no_events
            && !f.syn_seen
            && f.steps.is_empty()
            && let Some(c) = f.first_c2s
        {
            f.syn_seen = true;
            let rtt = ts.since(c);
            let start = f.start.unwrap_or(ts);
            f.steps.push(Step {
                step: "TCP connect",
                at: ts.since(start),
                wait: ts.since(start),
                frame: 0,
                detail: format!("SYN → SYN/ACK, RTT {:.3} ms", rtt * 1e3),
                ok: true,
            });
            f.done.push("TCP connect");
            f.last = Some(ts);
        }
    }

    #[allow(clippy::too_many_lines)]
    pub fn event(&mut self, _c: &Common, e: &Event) {
        let Some(f) = self.flows.get_mut(&e.flow) else {
            return;
        };
        if f.client.is_empty() {
            let (c, sv) = match e.dir {
                Dir::ClientToServer => ((e.src, e.sport), (e.dst, e.dport)),
                Dir::ServerToClient => ((e.dst, e.dport), (e.src, e.sport)),
            };
            f.client = format!("{}:{}", c.0, c.1);
            f.server = format!("{}:{}", sv.0, sv.1);
        }
        let d = e.details.as_ref().unwrap_or(&Value::Null);
        let local = e.name.rsplit(':').next().unwrap_or(&e.name);
        let c2s = e.dir == Dir::ClientToServer;
        match (e.kind, local) {
            (EventKind::StreamHeader, _) if c2s => {
                f.xmpp = true;
                let to = e.to.as_deref().unwrap_or("?");
                if !f.has("stream open") {
                    f.step("stream open", e, format!("to {to}"), true);
                } else {
                    let why = if f.sasl_ok {
                        "after SASL"
                    } else if f.tls_ok {
                        "after TLS"
                    } else {
                        "again"
                    };
                    f.step("restart", e, format!("to {to} ({why})"), true);
                }
            }
            (EventKind::Nonza, "features") if !c2s => {
                let mut parts = Vec::new();
                for feat in d
                    .get("features")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    match s(feat, "name") {
                        Some("sasl") => {
                            let m: Vec<&str> = feat
                                .get("mechanisms")
                                .and_then(Value::as_array)
                                .map(|a| a.iter().filter_map(Value::as_str).collect())
                                .unwrap_or_default();
                            parts.push(format!("mechanisms {}", m.join(" ")));
                        }
                        Some("starttls") => parts.push(
                            if feat.get("required").and_then(Value::as_bool) == Some(true) {
                                "STARTTLS required".to_owned()
                            } else {
                                "STARTTLS offered".to_owned()
                            },
                        ),
                        Some(n) => parts.push(n.to_owned()),
                        None => {}
                    }
                }
                f.step("features", e, parts.join(", "), true);
            }
            (EventKind::Nonza, "starttls") if c2s => f.step("STARTTLS", e, "asked".into(), true),
            (EventKind::Nonza, "proceed") => {
                f.step("STARTTLS", e, "server proceeds".into(), true);
            }
            (EventKind::Tls, _) => {
                f.xmpp = true;
                for h in d
                    .get("handshakes")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    match s(h, "type") {
                        Some("ClientHello") | Some("Client Hello") => {
                            let sni = s(h, "sni").map(|x| format!(" SNI {x}")).unwrap_or_default();
                            f.step("TLS handshake", e, format!("Client Hello{sni}"), true);
                        }
                        Some("ServerHello") | Some("Server Hello") => {
                            f.tls_ok = true;
                            f.step(
                                "TLS handshake",
                                e,
                                format!(
                                    "Server Hello: {} {}",
                                    s(h, "version").unwrap_or("?"),
                                    s(h, "cipher_suite").unwrap_or("")
                                ),
                                true,
                            );
                        }
                        _ => {}
                    }
                }
                if let Some(a) = d.get("alert") {
                    f.step("TLS handshake", e, format!("alert {a}"), false);
                }
            }
            (EventKind::Nonza, "auth") if c2s => {
                let m = s(d, "mechanism").unwrap_or("?");
                f.step("SASL", e, format!("mechanism {m}"), true);
            }
            (EventKind::Nonza, "success") => {
                f.sasl_ok = true;
                f.step("SASL", e, "success".into(), true);
            }
            (EventKind::Nonza, "failure") if &*e.ns == "urn:ietf:params:xml:ns:xmpp-sasl" => {
                let c = s(d, "condition").unwrap_or("failure");
                f.step("SASL", e, format!("failure: {c}"), false);
            }
            (EventKind::Nonza, "error") => {
                let c = s(d, "condition").unwrap_or("?");
                f.step("stream error", e, c.to_owned(), false);
            }
            (EventKind::Stanza, "iq") if !c2s => {
                let ok = e.typ.as_deref() == Some("result");
                let ns = s(d, "child_ns").unwrap_or("");
                let payload = d.get("payload");
                if ns == NS_BIND
                    || (!f.has("bind")
                        && f.sasl_ok
                        && e.response_to.is_some()
                        && ns.is_empty()
                        && !ok)
                {
                    let jid = payload.and_then(|p| s(p, "jid")).unwrap_or("");
                    if !jid.is_empty() {
                        f.jid = Some(jid.to_owned());
                    }
                    let detail = if ok {
                        jid.to_owned()
                    } else {
                        "error".to_owned()
                    };
                    f.step("bind", e, detail, ok);
                } else if ns == NS_SESSION {
                    f.step("session", e, String::new(), ok);
                } else if ns == NS_ROSTER && !f.has("roster") && e.typ.as_deref() != Some("set") {
                    let n = payload
                        .and_then(|p| p.get("items"))
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    f.step("roster", e, format!("{n} items"), ok);
                } else if e.typ.as_deref() == Some("result")
                    && ns.is_empty()
                    && f.has("bind")
                    && !f.has("session")
                    && !f.has("roster")
                {
                    // An empty result right after bind answers the session request.
                    f.step("session", e, "(empty result)".into(), true);
                }
            }
            (EventKind::Stanza, "presence")
                if c2s && !f.has("initial presence") && e.to.is_none() && e.typ.is_none() =>
            {
                let show = s(d, "show").unwrap_or("available");
                f.step("initial presence", e, show.to_owned(), true);
            }
            (EventKind::Stanza, "message") if c2s && !f.has("first message") && e.has_body => {
                let to = e.to.as_deref().unwrap_or("?");
                f.step("first message", e, format!("to {to}"), true);
            }
            _ => {}
        }
    }

    /// Every XMPP flow's sign-in, with its missing steps listed.
    #[must_use]
    pub fn flows(&self) -> Vec<Flow> {
        self.flows
            .values()
            .filter(|f| f.xmpp)
            .map(|f| {
                let mut f = f.clone();
                f.missing = EXPECTED.iter().copied().filter(|x| !f.has(x)).collect();
                f
            })
            .collect()
    }

    /// # Errors
    /// The output fails.
    pub fn write(&self, out: &mut impl Write, _c: &Common, style: Style) -> io::Result<()> {
        let flows = self.flows();
        if style != Style::Text {
            for f in &flows {
                let mut v = serde_json::to_value(f).unwrap_or(Value::Null);
                if let Some(o) = v.as_object_mut() {
                    o.insert("kind".into(), "signin".into());
                }
                serde_json::to_writer(&mut *out, &v)?;
                writeln!(out)?;
            }
            return Ok(());
        }
        for f in &flows {
            let mut b = String::new();
            let _ = writeln!(
                b,
                "Sign-in, flow {}: {} → {}{}",
                f.flow,
                f.client,
                f.server,
                f.jid
                    .as_deref()
                    .map(|j| format!(" ({j})"))
                    .unwrap_or_default()
            );
            let _ = writeln!(
                b,
                "  {:>10} {:>10}  {:<18} detail",
                "at (s)", "wait (s)", "step"
            );
            for st in &f.steps {
                let _ = writeln!(
                    b,
                    "  {:>10.6} {:>10.6}  {:<18} {}{}",
                    st.at,
                    st.wait,
                    st.step,
                    if st.ok { "" } else { "FAILED: " },
                    st.detail
                );
            }
            for m in &f.missing {
                let why = f.missing_reason(m);
                let _ = writeln!(b, "  {:>10} {:>10}  {:<18} MISSING: {why}", "-", "-", m);
            }
            b.push('\n');
            out.write_all(b.as_bytes())?;
        }
        Ok(())
    }
}

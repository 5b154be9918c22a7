//! Structured details of one element, for `-V`, NDJSON (`details`) and the
//! TUI's XML pane: the fields a person wants to read, named, with secrets
//! masked. Computed only when an output asks for them (never for the
//! default text lines or `--stats`).
//!
//! Rules cite RFC 6120 (core), RFC 6121 (IM) and the XEPs named beside them.
//! An element not known here is shown by name and namespace, never flagged.

use serde_json::{Map, Value, json};

use super::element::Element;
use super::info::{
    NS_CHATSTATES, NS_COMPRESS, NS_CSI, NS_DIALBACK, NS_SASL, NS_SM2, NS_SM3, NS_STANZA_ERRORS,
    NS_STREAM_ERRORS, NS_STREAMS, NS_TLS,
};
use super::sasl::{self, MASK, Step};
use crate::model::Note;
use crate::tls::{self, TlsRecord};

pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
pub const NS_ROSTER: &str = "jabber:iq:roster";
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
pub const NS_RECEIPTS: &str = "urn:xmpp:receipts";
pub const NS_CARBONS: &str = "urn:xmpp:carbons:2";
pub const NS_FORWARD: &str = "urn:xmpp:forward:0";
pub const NS_DELAY: &str = "urn:xmpp:delay";
pub const NS_DELAY_LEGACY: &str = "jabber:x:delay";
pub const NS_MARKERS: &str = "urn:xmpp:chat-markers:0";
pub const NS_CORRECT: &str = "urn:xmpp:message-correct:0";
pub const NS_OOB: &str = "jabber:x:oob";
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const NS_CONFERENCE: &str = "jabber:x:conference";
pub const NS_CAPS: &str = "http://jabber.org/protocol/caps";
pub const NS_VCARD_UPDATE: &str = "vcard-temp:x:update";
pub const NS_JINGLE: &str = "urn:xmpp:jingle:1";
pub const NS_GOOGLE_SESSION: &str = "http://www.google.com/session";
pub const NS_IQ_AUTH: &str = "jabber:iq:auth";
pub const NS_IQ_REGISTER: &str = "jabber:iq:register";

/// What the extensions Wireshark, xmppscope and the Google Talk era know
/// are called (namespace → readable name).
#[must_use]
pub fn ns_name(ns: &str) -> Option<&'static str> {
    Some(match ns {
        NS_BIND => "resource binding (RFC 6120 §7)",
        NS_SESSION => "session (RFC 3921 §3, optional in RFC 6121)",
        NS_ROSTER => "roster (RFC 6121 §2)",
        NS_DISCO_INFO => "service discovery info (XEP-0030)",
        NS_DISCO_ITEMS => "service discovery items (XEP-0030)",
        "vcard-temp" => "vCard (XEP-0054)",
        "jabber:iq:version" => "software version (XEP-0092)",
        "jabber:iq:last" => "last activity (XEP-0012)",
        "urn:xmpp:ping" => "ping (XEP-0199)",
        "urn:xmpp:blocking" => "blocking (XEP-0191)",
        "jabber:iq:private" => "private XML storage (XEP-0049)",
        "http://jabber.org/protocol/muc#owner" => "MUC owner (XEP-0045)",
        "http://jabber.org/protocol/muc#admin" => "MUC admin (XEP-0045)",
        NS_MUC => "MUC join (XEP-0045)",
        NS_MUC_USER => "MUC user (XEP-0045)",
        "http://jabber.org/protocol/pubsub" => "publish-subscribe (XEP-0060)",
        "urn:xmpp:carbons:2" => "message carbons (XEP-0280)",
        "urn:xmpp:mam:2" => "message archive (XEP-0313)",
        NS_IQ_AUTH => "legacy authentication (XEP-0078)",
        NS_IQ_REGISTER => "in-band registration (XEP-0077)",
        NS_JINGLE => "Jingle (XEP-0166)",
        "google:roster" => "Google Talk roster extensions (gr:ext, gr:t, gr:mh)",
        "google:shared-status" => "Google Talk shared status",
        "google:jingleinfo" => "Google Talk Jingle info (STUN and relay servers)",
        "google:mail:notify" => "Google Talk Gmail notification",
        "google:nosave" => "Google Talk off the record (nosave)",
        "google:queue" => "Google Talk presence queue",
        "google:setting" => "Google Talk user settings",
        NS_GOOGLE_SESSION => "Google Talk session (pre-Jingle)",
        "http://www.google.com/transport/p2p" => "Google Talk p2p transport",
        "google:auth" => "Google Talk auth extension",
        _ => return None,
    })
}

/// Context the details need beyond the element.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ctx<'a> {
    /// SASL mechanism chosen on this flow, if seen.
    pub sasl_mech: Option<&'a str>,
    pub show_secrets: bool,
}

fn text_of<'a>(el: &'a Element, local: &str) -> Option<&'a str> {
    el.child(local).map(|c| c.text.trim())
}

fn put(m: &mut Map<String, Value>, k: &str, v: impl Into<Value>) {
    m.insert(k.to_owned(), v.into());
}

fn put_opt(m: &mut Map<String, Value>, k: &str, v: Option<&str>) {
    if let Some(v) = v {
        m.insert(k.to_owned(), Value::from(v));
    }
}

fn attrs_obj(el: &Element, names: &[&str]) -> Map<String, Value> {
    let mut m = Map::new();
    for n in names {
        put_opt(&mut m, n, el.attr(n));
    }
    m
}

/// Details of a stream header (RFC 6120 §4.7).
#[must_use]
pub fn stream_header(el: &Element) -> Value {
    let mut m = attrs_obj(el, &["to", "from", "id", "version", "xml:lang"]);
    let default_ns = el.attr("xmlns").unwrap_or("");
    let kind = match default_ns {
        "jabber:client" => "c2s",
        "jabber:server" => "s2s",
        "jabber:component:accept" => "component (XEP-0114)",
        "jabber:component:connect" => "component (connect, XEP-0114)",
        _ => "unknown",
    };
    put(&mut m, "stream_ns", default_ns);
    put(&mut m, "stream_kind", kind);
    if let Some(db) = el.attr("xmlns:db") {
        put(&mut m, "dialback_ns", db);
    }
    Value::Object(m)
}

/// Details of one top-level element, and notes (undecodable SASL).
#[must_use]
pub fn details(el: &Element, ctx: Ctx<'_>) -> (Value, Vec<Note>) {
    let mut notes: Vec<Note> = Vec::new();
    let mut m = Map::new();
    put(&mut m, "element", el.local());
    if !el.ns.is_empty() {
        put(&mut m, "ns", &*el.ns);
    }
    if let Some(n) = ns_name(&el.ns) {
        put(&mut m, "ns_name", n);
    }
    let ns: &str = &el.ns;
    match (el.local(), ns) {
        ("message", _) => message(el, &mut m),
        ("presence", _) => presence(el, &mut m),
        ("iq", _) => iq(el, ctx, &mut m),
        ("features", NS_STREAMS) => put(&mut m, "features", features(el)),
        ("error", NS_STREAMS) => {
            // RFC 6120 §4.9.3
            put(&mut m, "condition", condition(el, NS_STREAM_ERRORS));
            put_opt(&mut m, "text", text_of(el, "text"));
        }
        ("starttls" | "proceed" | "failure", NS_TLS) if el.child("required").is_some() => {
            put(&mut m, "required", true);
        }
        ("auth", NS_SASL) => {
            let mech = el.attr("mechanism").unwrap_or("");
            put(&mut m, "mechanism", mech);
            // Google Talk: ask for the full JID in the bind result.
            for (k, v) in &el.attrs {
                if k.ends_with("client-uses-full-bind-result") {
                    put(&mut m, k, v.as_str());
                }
            }
            sasl_payload(el, Some(mech), Step::Auth, ctx, &mut m, &mut notes);
        }
        ("challenge", NS_SASL) => {
            sasl_payload(el, ctx.sasl_mech, Step::Challenge, ctx, &mut m, &mut notes);
        }
        ("response", NS_SASL) => {
            sasl_payload(el, ctx.sasl_mech, Step::Response, ctx, &mut m, &mut notes);
        }
        ("success", NS_SASL) => {
            sasl_payload(el, ctx.sasl_mech, Step::Success, ctx, &mut m, &mut notes);
        }
        ("failure", NS_SASL) => {
            // RFC 6120 §6.5
            put(&mut m, "condition", condition(el, NS_SASL));
            put_opt(&mut m, "text", text_of(el, "text"));
        }
        (_, NS_SM3 | NS_SM2) => {
            // XEP-0198: h counts stanzas handled; resume/previd/max.
            put(&mut m, "sm", el.local());
            for a in ["h", "resume", "id", "previd", "max", "location"] {
                put_opt(&mut m, a, el.attr(a));
            }
            if el.local() == "failed" {
                put(&mut m, "condition", condition(el, NS_STANZA_ERRORS));
            }
        }
        (_, NS_CSI) => put(&mut m, "csi", el.local()),
        ("result" | "verify", NS_DIALBACK) => {
            // XEP-0220 §2: the key is a proof of the sending domain.
            for a in ["from", "to", "id", "type"] {
                put_opt(&mut m, a, el.attr(a));
            }
            let key = el.text.trim();
            if !key.is_empty() {
                put(&mut m, "key", if ctx.show_secrets { key } else { MASK });
            }
        }
        ("handshake", _) => {
            // XEP-0114 §3: SHA-1 of stream id + shared secret.
            let h = el.text.trim();
            if !h.is_empty() {
                put(&mut m, "digest", if ctx.show_secrets { h } else { MASK });
            }
        }
        ("compress", NS_COMPRESS) => put_opt(&mut m, "method", text_of(el, "method")),
        ("compressed", NS_COMPRESS) => put(&mut m, "compressed", true),
        _ => {}
    }
    (Value::Object(m), notes)
}

fn condition(el: &Element, ns: &str) -> String {
    el.children
        .iter()
        .find(|c| &*c.ns == ns && c.local() != "text")
        .map_or_else(
            || "undefined-condition".to_owned(),
            |c| c.local().to_owned(),
        )
}

fn sasl_payload(
    el: &Element,
    mech: Option<&str>,
    step: Step,
    ctx: Ctx<'_>,
    m: &mut Map<String, Value>,
    _notes: &mut [Note],
) {
    let d = sasl::decode(mech, step, &el.text, ctx.show_secrets);
    if d.empty {
        return;
    }
    if d.undecodable {
        // The note itself is raised by the dissector for every output.
        let raw = el.text.trim();
        put(m, "raw", if ctx.show_secrets { raw } else { MASK });
        return;
    }
    let mut f = Map::new();
    if let Some(msg) = d.message {
        put(&mut f, "message", msg);
    }
    for (k, v) in d.fields {
        f.insert(k, Value::from(v));
    }
    put(m, "sasl", Value::Object(f));
}

/// RFC 6120 §4.3.2: features advertised, by name.
fn features(el: &Element) -> Value {
    let mut out = Vec::new();
    for c in &el.children {
        let ns: &str = &c.ns;
        let v = match (c.local(), ns) {
            ("starttls", NS_TLS) => {
                json!({"name": "starttls", "required": c.child("required").is_some()})
            }
            ("mechanisms", NS_SASL) => {
                let mechs: Vec<&str> = c
                    .children
                    .iter()
                    .filter(|m| m.local() == "mechanism")
                    .map(|m| m.text.trim())
                    .collect();
                json!({"name": "sasl", "mechanisms": mechs})
            }
            ("bind", NS_BIND) => json!({"name": "bind"}),
            ("session", NS_SESSION) => {
                json!({"name": "session", "optional": c.child("optional").is_some()})
            }
            ("sm", NS_SM3 | NS_SM2) => json!({"name": "sm", "ns": ns}),
            ("csi", NS_CSI) => json!({"name": "csi"}),
            ("ver", "urn:xmpp:features:rosterver") => json!({"name": "rosterver"}),
            ("compression", "http://jabber.org/features/compress") => {
                let methods: Vec<&str> = c
                    .children
                    .iter()
                    .filter(|m| m.local() == "method")
                    .map(|m| m.text.trim())
                    .collect();
                json!({"name": "compression", "methods": methods})
            }
            ("register", "http://jabber.org/features/iq-register") => json!({"name": "register"}),
            ("dialback", "urn:xmpp:features:dialback") => json!({"name": "dialback"}),
            ("auth", "http://jabber.org/features/iq-auth") => json!({"name": "iq-auth"}),
            ("c", NS_CAPS) => {
                json!({"name": "caps", "node": c.attr("node"), "ver": c.attr("ver")})
            }
            (l, n) => json!({"name": l, "ns": n}),
        };
        out.push(v);
    }
    Value::Array(out)
}

fn delay(el: &Element, m: &mut Map<String, Value>) {
    // XEP-0203, and the legacy XEP-0091 jabber:x:delay.
    if let Some(d) = el
        .child_ns("delay", NS_DELAY)
        .or_else(|| el.child_ns("x", NS_DELAY_LEGACY))
    {
        let mut o = attrs_obj(d, &["stamp", "from"]);
        if !d.text.trim().is_empty() {
            put(&mut o, "reason", d.text.trim());
        }
        put(m, "delay", Value::Object(o));
    }
}

fn stanza_error(el: &Element, m: &mut Map<String, Value>) {
    // RFC 6120 §8.3
    if let Some(e) = el.child("error") {
        let mut o = attrs_obj(e, &["type", "by", "code"]);
        put(&mut o, "condition", condition(e, NS_STANZA_ERRORS));
        if let Some(t) = e.child_ns("text", NS_STANZA_ERRORS) {
            put(&mut o, "text", t.text.trim());
        }
        put(m, "error", Value::Object(o));
    }
}

fn extensions(el: &Element, skip: &[&str]) -> Value {
    let v: Vec<Value> = el
        .children
        .iter()
        .filter(|c| !skip.contains(&c.local()) || c.ns != el.ns)
        .map(|c| {
            let mut o = Map::new();
            put(&mut o, "element", c.local());
            put(&mut o, "ns", &*c.ns);
            if let Some(n) = ns_name(&c.ns) {
                put(&mut o, "ns_name", n);
            }
            Value::Object(o)
        })
        .collect();
    Value::Array(v)
}

/// RFC 6121 §5, with the XEPs messages carry.
fn message(el: &Element, m: &mut Map<String, Value>) {
    put(m, "type", el.attr("type").unwrap_or("normal"));
    for a in ["from", "to", "id"] {
        put_opt(m, a, el.attr(a));
    }
    put_opt(m, "body", el.child("body").map(|b| b.text.as_str()));
    put_opt(m, "subject", text_of(el, "subject"));
    if let Some(t) = el.child("thread") {
        let mut o = Map::new();
        put(&mut o, "id", t.text.trim());
        put_opt(&mut o, "parent", t.attr("parent"));
        put(m, "thread", Value::Object(o));
    }
    // XEP-0085
    if let Some(cs) = el.children.iter().find(|c| &*c.ns == NS_CHATSTATES) {
        put(m, "chat_state", cs.local());
    }
    // XEP-0184
    if el.child_ns("request", NS_RECEIPTS).is_some() {
        put(m, "receipt_request", true);
    }
    if let Some(r) = el.child_ns("received", NS_RECEIPTS) {
        put(m, "receipt_received", r.attr("id").unwrap_or(""));
    }
    // XEP-0280: the forwarded copy decoded like any message.
    for dirn in ["received", "sent"] {
        if let Some(c) = el.child_ns(dirn, NS_CARBONS) {
            let mut o = Map::new();
            put(&mut o, "direction", dirn);
            if let Some(inner) = c
                .child_ns("forwarded", NS_FORWARD)
                .and_then(|f| f.child("message"))
            {
                let mut im = Map::new();
                message(inner, &mut im);
                put(&mut o, "message", Value::Object(im));
            }
            put(m, "carbon", Value::Object(o));
        }
    }
    if el.child_ns("private", NS_CARBONS).is_some() {
        put(m, "carbons_private", true);
    }
    // XEP-0297 forwarded outside carbons (e.g. MAM results).
    if let Some(inner) = el
        .children
        .iter()
        .find_map(|c| c.child_ns("forwarded", NS_FORWARD))
        .and_then(|f| f.child("message"))
    {
        let mut im = Map::new();
        message(inner, &mut im);
        put(m, "forwarded", Value::Object(im));
    }
    delay(el, m);
    // XEP-0333
    if let Some(mk) = el.children.iter().find(|c| &*c.ns == NS_MARKERS) {
        let mut o = Map::new();
        put(&mut o, "marker", mk.local());
        put_opt(&mut o, "id", mk.attr("id"));
        put(m, "chat_marker", Value::Object(o));
    }
    // XEP-0308
    if let Some(r) = el.child_ns("replace", NS_CORRECT) {
        put(m, "replaces", r.attr("id").unwrap_or(""));
    }
    // XEP-0066
    if let Some(x) = el.child_ns("x", NS_OOB) {
        let mut o = Map::new();
        put_opt(&mut o, "url", text_of(x, "url"));
        put_opt(&mut o, "desc", text_of(x, "desc"));
        put(m, "oob", Value::Object(o));
    }
    // XEP-0045 §7.8.2 mediated and XEP-0249 direct invitations.
    if let Some(inv) = el
        .child_ns("x", NS_MUC_USER)
        .and_then(|x| x.child("invite"))
    {
        let mut o = attrs_obj(inv, &["from", "to"]);
        put_opt(&mut o, "reason", text_of(inv, "reason"));
        put(m, "muc_invite", Value::Object(o));
    }
    if let Some(x) = el.child_ns("x", NS_CONFERENCE) {
        put(
            m,
            "muc_invite",
            Value::Object(attrs_obj(x, &["jid", "reason", "password"])),
        );
    }
    if el.child_ns("nosave", "google:nosave").is_some()
        || el.child_ns("x", "google:nosave").is_some()
    {
        put(m, "google_nosave", true);
    }
    stanza_error(el, m);
    put(
        m,
        "children",
        extensions(el, &["body", "subject", "thread", "error"]),
    );
}

/// RFC 6121 §4, with caps, vCard avatars, delay and MUC.
fn presence(el: &Element, m: &mut Map<String, Value>) {
    put(m, "type", el.attr("type").unwrap_or("available"));
    for a in ["from", "to", "id"] {
        put_opt(m, a, el.attr(a));
    }
    put_opt(m, "show", text_of(el, "show"));
    put_opt(m, "status", el.child("status").map(|s| s.text.as_str()));
    if let Some(p) = text_of(el, "priority") {
        match p.parse::<i8>() {
            Ok(n) => put(m, "priority", n),
            Err(_) => put(m, "priority", p),
        }
    }
    // XEP-0115
    if let Some(c) = el.child_ns("c", NS_CAPS) {
        put(
            m,
            "caps",
            Value::Object(attrs_obj(c, &["node", "ver", "hash", "ext"])),
        );
    }
    // XEP-0153
    if let Some(x) = el.child_ns("x", NS_VCARD_UPDATE) {
        put(
            m,
            "vcard_photo",
            x.child("photo").map_or("", |p| p.text.trim()),
        );
    }
    delay(el, m);
    if el.child_ns("x", NS_MUC).is_some() {
        put(m, "muc_join", true);
    }
    if let Some(x) = el.child_ns("x", NS_MUC_USER) {
        let mut o = Map::new();
        if let Some(item) = x.child("item") {
            put(
                &mut o,
                "item",
                Value::Object(attrs_obj(item, &["affiliation", "role", "jid", "nick"])),
            );
        }
        let codes: Vec<&str> = x
            .children
            .iter()
            .filter(|c| c.local() == "status")
            .filter_map(|c| c.attr("code"))
            .collect();
        if !codes.is_empty() {
            put(&mut o, "status_codes", codes);
        }
        put(m, "muc", Value::Object(o));
    }
    stanza_error(el, m);
    put(
        m,
        "children",
        extensions(el, &["show", "status", "priority", "error"]),
    );
}

/// RFC 6120 §8.2.3, and the payloads named by the issue.
fn iq(el: &Element, ctx: Ctx<'_>, m: &mut Map<String, Value>) {
    for a in ["type", "id", "from", "to"] {
        put_opt(m, a, el.attr(a));
    }
    stanza_error(el, m);
    let Some(q) = el.children.iter().find(|c| c.local() != "error") else {
        return;
    };
    let qns: &str = &q.ns;
    put(m, "child", q.local());
    put(m, "child_ns", qns);
    if let Some(n) = ns_name(qns) {
        put(m, "child_ns_name", n);
    }
    let mut p = Map::new();
    match qns {
        NS_BIND => {
            put_opt(&mut p, "resource", text_of(q, "resource"));
            put_opt(&mut p, "jid", text_of(q, "jid"));
        }
        NS_SESSION => put(&mut p, "session", true),
        NS_ROSTER | "google:roster" => {
            put_opt(&mut p, "ver", q.attr("ver"));
            for a in ["ext", "gr:ext", "gr:t", "gr:mh", "xmlns:gr"] {
                put_opt(&mut p, a, q.attr(a));
            }
            let items: Vec<Value> = q
                .children
                .iter()
                .filter(|c| c.local() == "item")
                .map(|i| {
                    let mut o = attrs_obj(
                        i,
                        &[
                            "jid",
                            "name",
                            "subscription",
                            "ask",
                            "approved",
                            "gr:t",
                            "gr:autohide",
                            "gr:mc",
                            "gr:rejected",
                        ],
                    );
                    let groups: Vec<&str> = i
                        .children
                        .iter()
                        .filter(|g| g.local() == "group")
                        .map(|g| g.text.trim())
                        .collect();
                    put(&mut o, "groups", groups);
                    Value::Object(o)
                })
                .collect();
            put(&mut p, "items", items);
        }
        NS_DISCO_INFO => {
            put_opt(&mut p, "node", q.attr("node"));
            let ids: Vec<Value> = q
                .children
                .iter()
                .filter(|c| c.local() == "identity")
                .map(|i| Value::Object(attrs_obj(i, &["category", "type", "name", "xml:lang"])))
                .collect();
            let feats: Vec<&str> = q
                .children
                .iter()
                .filter(|c| c.local() == "feature")
                .filter_map(|c| c.attr("var"))
                .collect();
            put(&mut p, "identities", ids);
            put(&mut p, "features", feats);
        }
        NS_DISCO_ITEMS => {
            put_opt(&mut p, "node", q.attr("node"));
            let items: Vec<Value> = q
                .children
                .iter()
                .filter(|c| c.local() == "item")
                .map(|i| Value::Object(attrs_obj(i, &["jid", "node", "name"])))
                .collect();
            put(&mut p, "items", items);
        }
        "vcard-temp" => {
            for f in ["FN", "NICKNAME", "BDAY", "URL", "JABBERID"] {
                put_opt(&mut p, f, text_of(q, f));
            }
            if let Some(ph) = q.child("PHOTO") {
                put_opt(&mut p, "PHOTO type", text_of(ph, "TYPE"));
                put(
                    &mut p,
                    "PHOTO bytes (base64)",
                    ph.child("BINVAL").map_or(0, |b| b.text.len()),
                );
            }
        }
        "jabber:iq:version" => {
            for f in ["name", "version", "os"] {
                put_opt(&mut p, f, text_of(q, f));
            }
        }
        "jabber:iq:last" => put_opt(&mut p, "seconds", q.attr("seconds")),
        "urn:xmpp:ping" => put(&mut p, "ping", true),
        "urn:xmpp:blocking" => {
            let jids: Vec<&str> = q
                .children
                .iter()
                .filter(|c| c.local() == "item")
                .filter_map(|c| c.attr("jid"))
                .collect();
            put(&mut p, "action", q.local());
            put(&mut p, "jids", jids);
        }
        "jabber:iq:private" => {
            put(&mut p, "stored", extensions(q, &[]));
        }
        "http://jabber.org/protocol/muc#owner" | "http://jabber.org/protocol/muc#admin" => {
            let items: Vec<Value> = q
                .children
                .iter()
                .filter(|c| c.local() == "item")
                .map(|i| Value::Object(attrs_obj(i, &["affiliation", "role", "jid", "nick"])))
                .collect();
            put(&mut p, "items", items);
            if q.child("destroy").is_some() {
                put(&mut p, "destroy", true);
            }
        }
        NS_IQ_AUTH | NS_IQ_REGISTER => {
            // XEP-0078 / XEP-0077: the password is a secret.
            put_opt(&mut p, "username", text_of(q, "username"));
            put_opt(&mut p, "resource", text_of(q, "resource"));
            for s in ["password", "digest"] {
                if let Some(v) = text_of(q, s).filter(|v| !v.is_empty()) {
                    put(&mut p, s, if ctx.show_secrets { v } else { MASK });
                }
            }
        }
        "google:jingleinfo" => {
            let stun: Vec<Value> = q
                .child("stun")
                .map(|s| {
                    s.children
                        .iter()
                        .map(|c| Value::Object(attrs_obj(c, &["host", "udp"])))
                        .collect()
                })
                .unwrap_or_default();
            put(&mut p, "stun", stun);
            if let Some(r) = q.child("relay") {
                let mut o = Map::new();
                if let Some(t) = text_of(r, "token").filter(|t| !t.is_empty()) {
                    put(&mut o, "token", if ctx.show_secrets { t } else { MASK });
                }
                let servers: Vec<Value> = r
                    .children
                    .iter()
                    .filter(|c| c.local() == "server")
                    .map(|c| Value::Object(attrs_obj(c, &["host", "udp", "tcp", "tcpssl"])))
                    .collect();
                put(&mut o, "servers", servers);
                put(&mut p, "relay", Value::Object(o));
            }
        }
        "google:shared-status" => {
            put_opt(&mut p, "status", text_of(q, "status"));
            put_opt(&mut p, "show", text_of(q, "show"));
            put_opt(
                &mut p,
                "invisible",
                q.child("invisible").and_then(|i| i.attr("value")),
            );
            for a in [
                "status-max",
                "status-list-max",
                "status-list-contents-max",
                "version",
            ] {
                put_opt(&mut p, a, q.attr(a));
            }
        }
        "google:setting" => {
            let s: Vec<Value> = q
                .children
                .iter()
                .map(|c| json!({"name": c.local(), "value": c.attr("value")}))
                .collect();
            put(&mut p, "settings", s);
        }
        "google:mail:notify" => {
            for a in ["result-time", "total-matched", "total-estimate", "url"] {
                put_opt(&mut p, a, q.attr(a));
            }
            put(
                &mut p,
                "threads",
                q.children
                    .iter()
                    .filter(|c| c.local() == "mail-thread-info")
                    .count(),
            );
        }
        "google:nosave" => {
            let items: Vec<Value> = q
                .children
                .iter()
                .map(|c| Value::Object(attrs_obj(c, &["jid", "value"])))
                .collect();
            put(&mut p, "items", items);
        }
        NS_JINGLE => {
            // XEP-0166 §7
            for a in ["action", "sid", "initiator", "responder"] {
                put_opt(&mut p, a, q.attr(a));
            }
            let contents: Vec<Value> = q
                .children
                .iter()
                .filter(|c| c.local() == "content")
                .map(|c| {
                    let mut o = attrs_obj(c, &["name", "creator", "senders"]);
                    if let Some(d) = c.child("description") {
                        put(&mut o, "description_ns", &*d.ns);
                        put_opt(&mut o, "media", d.attr("media"));
                    }
                    if let Some(t) = c.child("transport") {
                        put(&mut o, "transport_ns", &*t.ns);
                        put(&mut o, "candidates", candidates(t));
                    }
                    Value::Object(o)
                })
                .collect();
            put(&mut p, "contents", contents);
            if let Some(r) = q.child("reason") {
                put_opt(
                    &mut p,
                    "reason",
                    r.children
                        .iter()
                        .find(|c| c.local() != "text")
                        .map(Element::local),
                );
            }
        }
        NS_GOOGLE_SESSION => {
            // Google Talk's pre-standard session: initiate/accept/terminate/candidates.
            for a in ["type", "id", "initiator"] {
                put_opt(&mut p, a, q.attr(a));
            }
            put(&mut p, "candidates", candidates(q));
        }
        _ => {
            put(&mut p, "children", extensions(q, &[]));
        }
    }
    if !p.is_empty() {
        put(m, "payload", Value::Object(p));
    }
}

/// Transport candidates (Jingle ICE-UDP / raw-UDP, Google p2p), with any
/// ICE password masked.
fn candidates(t: &Element) -> Value {
    let mut out = Vec::new();
    let mut stack: Vec<&Element> = vec![t];
    while let Some(e) = stack.pop() {
        for c in &e.children {
            if c.local() == "candidate" {
                out.push(Value::Object(attrs_obj(
                    c,
                    &[
                        "ip",
                        "address",
                        "port",
                        "protocol",
                        "type",
                        "name",
                        "username",
                        "preference",
                        "priority",
                    ],
                )));
            } else {
                stack.push(c);
            }
        }
    }
    Value::Array(out)
}

/// Details of a TLS record: what an observer of the encrypted session learns.
#[must_use]
pub fn tls_record(r: &TlsRecord) -> Value {
    let mut m = Map::new();
    put(
        &mut m,
        "content_type",
        tls::content_type_name(r.content_type),
    );
    put(&mut m, "record_version", tls::version_name(r.version));
    put(&mut m, "length", r.length);
    if r.encrypted {
        put(&mut m, "encrypted", true);
    }
    let hs: Vec<Value> = r
        .handshakes
        .iter()
        .map(|h| {
            let mut o = Map::new();
            put(&mut o, "type", tls::handshake_name(h.msg_type));
            put(&mut o, "length", h.length);
            if let Some(ch) = &h.client_hello {
                put_opt(&mut o, "sni", ch.sni.as_deref());
                put(&mut o, "alpn", ch.alpn.clone());
                let v: Vec<String> = ch
                    .supported_versions
                    .iter()
                    .map(|v| tls::version_name(*v))
                    .collect();
                put(&mut o, "supported_versions", v);
                put(
                    &mut o,
                    "legacy_version",
                    tls::version_name(ch.legacy_version),
                );
                put(&mut o, "cipher_suites", ch.cipher_suites.len());
            }
            if let Some(sh) = &h.server_hello {
                put(
                    &mut o,
                    "version",
                    tls::version_name(sh.negotiated_version()),
                );
                put(
                    &mut o,
                    "cipher_suite",
                    tls::cipher_suite_name(sh.cipher_suite),
                );
            }
            if !h.certificate_subjects.is_empty() {
                put(&mut o, "certificate_names", h.certificate_subjects.clone());
            }
            Value::Object(o)
        })
        .collect();
    if !hs.is_empty() {
        put(&mut m, "handshakes", hs);
    }
    if let Some((level, desc)) = r.alert {
        put(
            &mut m,
            "alert",
            json!({"level": tls::alert_level_name(level), "description": tls::alert_description_name(desc)}),
        );
    }
    Value::Object(m)
}

/// Is this element's own text a secret (SASL credentials, dialback key,
/// component handshake, legacy password)?
#[must_use]
pub fn secret_text(el: &Element, parent_ns: Option<&str>, sasl_mech: Option<&str>) -> bool {
    let ns: &str = &el.ns;
    let t = el.text.trim();
    if t.is_empty() || t == "=" {
        return false;
    }
    match (el.local(), ns) {
        ("auth" | "response", NS_SASL) => true,
        ("challenge" | "success", NS_SASL) => {
            sasl::decode(sasl_mech, Step::Challenge, t, false).has_secret
        }
        ("result" | "verify", NS_DIALBACK) => true,
        ("handshake", _) => parent_ns.is_none(),
        ("password" | "digest", NS_IQ_AUTH | NS_IQ_REGISTER) => true,
        ("token", "google:jingleinfo") => true,
        _ => false,
    }
}

/// Pretty-printed XML (two spaces per level, entities decoded for reading),
/// secrets replaced by [`MASK`] unless `show_secrets`.
#[must_use]
pub fn pretty(el: &Element, show_secrets: bool, sasl_mech: Option<&str>) -> String {
    let mut out = String::new();
    pretty_into(el, None, 0, show_secrets, sasl_mech, &mut out);
    out
}

fn pretty_into(
    el: &Element,
    parent_ns: Option<&str>,
    depth: usize,
    show: bool,
    mech: Option<&str>,
    out: &mut String,
) {
    let pad = "  ".repeat(depth);
    out.push_str(&pad);
    out.push('<');
    out.push_str(&el.name);
    for (k, v) in &el.attrs {
        out.push(' ');
        out.push_str(k);
        out.push_str("='");
        out.push_str(v);
        out.push('\'');
    }
    let text = el.text.trim();
    if el.children.is_empty() && text.is_empty() {
        out.push_str("/>\n");
        return;
    }
    out.push('>');
    let shown_text = if !show && secret_text(el, parent_ns, mech) {
        MASK
    } else {
        text
    };
    if el.children.is_empty() {
        out.push_str(shown_text);
    } else {
        out.push('\n');
        if !shown_text.is_empty() {
            out.push_str(&pad);
            out.push_str("  ");
            out.push_str(shown_text);
            out.push('\n');
        }
        for c in &el.children {
            pretty_into(c, Some(&el.ns), depth + 1, show, mech, out);
        }
        out.push_str(&pad);
    }
    out.push_str("</");
    out.push_str(&el.name);
    out.push_str(">\n");
}

/// Readable lines for `-V`: `key: value`, nested objects indented.
pub fn write_readable(v: &Value, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match v {
                    Value::Object(_) => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        write_readable(v, depth + 1, out);
                    }
                    Value::Array(a) if a.iter().any(|x| x.is_object()) => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        for x in a {
                            if let Value::Object(_) = x {
                                out.push_str(&format!("{pad}  -\n"));
                                write_readable(x, depth + 2, out);
                            } else {
                                out.push_str(&format!("{pad}  - {}\n", scalar(x)));
                            }
                        }
                    }
                    Value::Array(a) => {
                        let parts: Vec<String> = a.iter().map(scalar).collect();
                        out.push_str(&format!("{pad}{k}: [{}]\n", parts.join(", ")));
                    }
                    _ => out.push_str(&format!("{pad}{k}: {}\n", scalar(v))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
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

    fn d(x: &str) -> Value {
        details(&el(x), Ctx::default()).0
    }

    #[test]
    fn carbons_inner_message_decoded() {
        let v = d(
            "<message from='romeo@montague.example' to='romeo@montague.example/home' type='chat'>\
            <received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
            <message xmlns='jabber:client' from='juliet@capulet.example/balcony' to='romeo@montague.example/garden' type='chat'>\
            <body>What man art thou?</body><thread>0e3141cd80894871a68e6fe6b1ec56fa</thread>\
            <composing xmlns='http://jabber.org/protocol/chatstates'/></message></forwarded></received></message>",
        );
        assert_eq!(v["carbon"]["direction"], "received");
        assert_eq!(v["carbon"]["message"]["body"], "What man art thou?");
        assert_eq!(v["carbon"]["message"]["chat_state"], "composing");
        assert_eq!(
            v["carbon"]["message"]["from"],
            "juliet@capulet.example/balcony"
        );
    }

    #[test]
    fn message_extensions() {
        let v = d(
            "<message to='a@b' id='m2'><body>x</body><request xmlns='urn:xmpp:receipts'/>\
            <markable xmlns='urn:xmpp:chat-markers:0'/><replace id='m1' xmlns='urn:xmpp:message-correct:0'/>\
            <x xmlns='jabber:x:oob'><url>https://e.example/f.png</url></x>\
            <delay xmlns='urn:xmpp:delay' stamp='2002-09-10T23:08:25Z' from='e.example'/></message>",
        );
        assert_eq!(v["receipt_request"], true);
        assert_eq!(v["chat_marker"]["marker"], "markable");
        assert_eq!(v["replaces"], "m1");
        assert_eq!(v["oob"]["url"], "https://e.example/f.png");
        assert_eq!(v["delay"]["stamp"], "2002-09-10T23:08:25Z");
        let v = d(
            "<message from='room@muc.example'><x xmlns='http://jabber.org/protocol/muc#user'>\
            <invite from='crone1@shakespeare.lit'><reason>Hey</reason></invite></x></message>",
        );
        assert_eq!(v["muc_invite"]["from"], "crone1@shakespeare.lit");
        assert_eq!(v["muc_invite"]["reason"], "Hey");
    }

    #[test]
    fn stream_errors_and_sm() {
        let v = d(
            "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
            <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced by new connection</text></stream:error>",
        );
        assert_eq!(v["condition"], "conflict");
        assert_eq!(v["text"], "Replaced by new connection");
        let v = d("<resumed xmlns='urn:xmpp:sm:3' h='12' previd='abc'/>");
        assert_eq!(v["h"], "12");
        assert_eq!(v["previd"], "abc");
    }

    #[test]
    fn google_talk_extensions() {
        let v = d(
            "<iq type='get' id='r'><query xmlns='jabber:iq:roster' xmlns:gr='google:roster' gr:ext='2'/></iq>",
        );
        assert_eq!(v["payload"]["gr:ext"], "2");
        let v = d(
            "<iq type='result' id='j'><query xmlns='google:jingleinfo'><stun><server host='stun.l.google.com' udp='19302'/></stun>\
            <relay><token>CAESGsecret</token><server host='relay.google.com' udp='19295' tcp='19294' tcpssl='443'/></relay></query></iq>",
        );
        assert_eq!(
            v["child_ns_name"],
            "Google Talk Jingle info (STUN and relay servers)"
        );
        assert_eq!(v["payload"]["stun"][0]["host"], "stun.l.google.com");
        assert_eq!(v["payload"]["relay"]["token"], MASK);
        assert!(!pretty(&el("<iq type='result' id='j'><query xmlns='google:jingleinfo'><relay><token>CAESGsecret</token></relay></query></iq>"), false, None).contains("CAESG"));
        let v = d(
            "<iq type='set' id='s'><session xmlns='http://www.google.com/session' type='initiate' id='123' initiator='a@gmail.com/x'>\
            <description xmlns='http://www.google.com/session/phone'/></session></iq>",
        );
        assert_eq!(v["payload"]["type"], "initiate");
        let v = d(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-GOOGLE-TOKEN' xmlns:ga='http://www.google.com/talk/protocol/auth' ga:client-uses-full-bind-result='true'>AHJvbWVvQGdtYWlsLmNvbQBzZWNyZXQ=</auth>",
        );
        assert_eq!(v["ga:client-uses-full-bind-result"], "true");
        assert_eq!(v["sasl"]["authcid"], "romeo@gmail.com");
        assert_eq!(v["sasl"]["token"], MASK);
        for ns in [
            "google:shared-status",
            "google:mail:notify",
            "google:nosave",
            "google:queue",
            "google:setting",
        ] {
            assert!(ns_name(ns).is_some(), "{ns}");
        }
    }

    #[test]
    fn pretty_masks_sasl_and_decodes_entities() {
        let e = el(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMA==</auth>",
        );
        let p = pretty(&e, false, None);
        assert!(!p.contains("AGp1"), "{p}");
        assert!(p.contains(MASK));
        let p = pretty(
            &el("<message><body>a &amp; b</body></message>"),
            false,
            None,
        );
        assert_eq!(p, "<message>\n  <body>a & b</body>\n</message>\n");
    }

    #[test]
    fn features_by_name() {
        let v = d(
            "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>\
            <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms>\
            <sm xmlns='urn:xmpp:sm:3'/><csi xmlns='urn:xmpp:csi:0'/><ver xmlns='urn:xmpp:features:rosterver'/>\
            <compression xmlns='http://jabber.org/features/compress'><method>zlib</method></compression></stream:features>",
        );
        let f = &v["features"];
        assert_eq!(f[0]["required"], true);
        assert_eq!(f[1]["mechanisms"][0], "SCRAM-SHA-1");
        assert_eq!(f[2]["name"], "sm");
        assert_eq!(f[4]["name"], "rosterver");
        assert_eq!(f[5]["methods"][0], "zlib");
    }
}

//! `--roster`: each account's roster rebuilt from roster results and
//! pushes (RFC 6121 §2.1.3, §2.1.6; Google's `google:roster` attributes)
//! and subscription presences (RFC 6121 §3).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;
use serde_json::Value;

use super::chat::Chat;
use super::{Common, MAX_CONTACTS, Style, bare, s};
use crate::model::{Dir, Event, EventKind};
use crate::xmpp::detail::NS_ROSTER;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Item {
    pub account: String,
    pub contact: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub subscription: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ask: Option<String>,
    /// Google's `gr:t` (`B` blocked, `H` hidden, `P` pinned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub google_t: Option<String>,
    /// Google's `gr:autohide` (`true`: hidden until the contact writes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub google_autohide: Option<String>,
    /// Google's `gr:mc` (how often the account and the contact talk; the
    /// client sorts by it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub google_mc: Option<String>,
    /// Google's `gr:rejected` (the contact's subscription request was refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub google_rejected: Option<String>,
    /// The last subscription presence exchanged (RFC 6121 §3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_subscription: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_presence: Option<String>,
}

#[derive(Debug, Default)]
pub struct Roster {
    /// account (bare) → contact (bare) → item.
    accounts: BTreeMap<String, BTreeMap<String, Item>>,
}

impl Roster {
    fn item(&mut self, account: &str, contact: &str) -> Option<&mut Item> {
        let acc = self.accounts.entry(account.to_owned()).or_default();
        if !acc.contains_key(contact) && acc.len() >= MAX_CONTACTS {
            return None;
        }
        Some(acc.entry(contact.to_owned()).or_insert_with(|| Item {
            account: account.to_owned(),
            contact: contact.to_owned(),
            subscription: "none".into(),
            ..Item::default()
        }))
    }

    pub fn event(&mut self, c: &Common, e: &Event) {
        if e.kind != EventKind::Stanza {
            return;
        }
        let Some(d) = &e.details else { return };
        let Some(account) = c.account.get(&e.flow).map(|j| bare(j)) else {
            return;
        };
        match s(d, "element") {
            Some("iq")
                if e.dir == Dir::ServerToClient
                    && matches!(s(d, "child_ns"), Some(NS_ROSTER | "google:roster")) =>
            {
                // A result is the whole roster (RFC 6121 §2.1.4); a set
                // is a push of changed items (§2.1.6).
                let typ = s(d, "type").unwrap_or("");
                if !matches!(typ, "result" | "set") {
                    return;
                }
                let items = d
                    .get("payload")
                    .and_then(|p| p.get("items"))
                    .and_then(Value::as_array);
                if typ == "result" && items.is_none() {
                    // RFC 6121 §2.6.3: an empty result means "unchanged".
                    return;
                }
                // §2.1.6: a push is only the server's when it has no `from`
                // or the account's bare JID; a client ignores any other.
                if typ == "set"
                    && s(d, "from").is_some_and(|f| f.contains('/') || bare(f) != account)
                {
                    return;
                }
                for it in items.into_iter().flatten() {
                    let Some(jid) = s(it, "jid") else { continue };
                    let jid = bare(jid);
                    if s(it, "subscription") == Some("remove") {
                        if let Some(a) = self.accounts.get_mut(&account) {
                            a.remove(&jid);
                        }
                        continue;
                    }
                    let Some(item) = self.item(&account, &jid) else {
                        return;
                    };
                    item.name = s(it, "name").map(str::to_owned);
                    item.subscription = s(it, "subscription").unwrap_or("none").to_owned();
                    item.ask = s(it, "ask").map(str::to_owned);
                    item.google_t = s(it, "gr:t").map(str::to_owned);
                    item.google_autohide = s(it, "gr:autohide").map(str::to_owned);
                    item.google_mc = s(it, "gr:mc").map(str::to_owned);
                    item.google_rejected = s(it, "gr:rejected").map(str::to_owned);
                    item.groups = it
                        .get("groups")
                        .and_then(Value::as_array)
                        .map(|g| {
                            g.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default();
                }
            }
            Some("presence") => {
                let typ = s(d, "type").unwrap_or("available");
                if !matches!(
                    typ,
                    "subscribe" | "subscribed" | "unsubscribe" | "unsubscribed"
                ) {
                    return;
                }
                // The peer is the other party of the subscription stanza.
                let peer = match e.dir {
                    Dir::ClientToServer => s(d, "to"),
                    Dir::ServerToClient => s(d, "from"),
                };
                let Some(peer) = peer.map(bare) else { return };
                let who = if e.dir == Dir::ClientToServer {
                    "sent"
                } else {
                    "received"
                };
                if let Some(item) = self.item(&account, &peer) {
                    item.last_subscription = Some(format!("{typ} ({who})"));
                    if typ == "subscribe" && e.dir == Dir::ClientToServer && item.ask.is_none() {
                        item.ask = Some("subscribe".into());
                    }
                }
            }
            _ => {}
        }
    }

    /// Every account's items, with the last presence seen of each contact.
    #[must_use]
    pub fn items(&self, chat: &Chat) -> Vec<Item> {
        let mut v = Vec::new();
        for acc in self.accounts.values() {
            for it in acc.values() {
                let mut it = it.clone();
                it.last_presence = chat.contacts.get(&it.contact).and_then(|ct| {
                    ct.presence.last().map(|p| match &p.status {
                        Some(st) => format!("{} ({st})", p.show),
                        None => p.show.clone(),
                    })
                });
                v.push(it);
            }
        }
        v
    }

    /// # Errors
    /// The output fails.
    pub fn write(&self, out: &mut impl Write, chat: &Chat, style: Style) -> io::Result<()> {
        let items = self.items(chat);
        if style != Style::Text {
            for it in &items {
                let mut v = serde_json::to_value(it).unwrap_or(Value::Null);
                if let Some(o) = v.as_object_mut() {
                    o.insert("kind".into(), "roster_item".into());
                }
                serde_json::to_writer(&mut *out, &v)?;
                writeln!(out)?;
            }
            return Ok(());
        }
        let mut b = String::new();
        let mut last = "";
        for it in &items {
            if it.account != last {
                let n = items.iter().filter(|i| i.account == it.account).count();
                let _ = writeln!(b, "Roster of {} ({n} contacts)", it.account);
                let _ = writeln!(
                    b,
                    "  {:<28} {:<14} {:<16} {:<12} {:<10} last presence",
                    "contact", "name", "groups", "subscription", "ask"
                );
                last = &it.account;
            }
            let _ = writeln!(
                b,
                "  {:<28} {:<14} {:<16} {:<12} {:<10} {}{}",
                it.contact,
                it.name.as_deref().unwrap_or("-"),
                if it.groups.is_empty() {
                    "-".to_owned()
                } else {
                    it.groups.join(",")
                },
                it.subscription,
                it.ask.as_deref().unwrap_or("-"),
                it.last_presence.as_deref().unwrap_or("-"),
                google_suffix(it),
            );
        }
        out.write_all(b.as_bytes())
    }
}

/// Google's roster attributes, after the last presence in text output:
/// `  [gr:t=B blocked, gr:autohide=true, gr:mc=12]`.
fn google_suffix(it: &Item) -> String {
    let mut parts = Vec::new();
    if let Some(t) = &it.google_t {
        let what = match t.as_str() {
            "B" => " blocked",
            "H" => " hidden",
            "P" => " pinned",
            _ => "",
        };
        parts.push(format!("gr:t={t}{what}"));
    }
    for (name, v) in [
        ("gr:autohide", &it.google_autohide),
        ("gr:mc", &it.google_mc),
        ("gr:rejected", &it.google_rejected),
    ] {
        if let Some(v) = v {
            parts.push(format!("{name}={v}"));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("  [{}]", parts.join(", "))
    }
}

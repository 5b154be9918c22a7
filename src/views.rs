//! The story views, fed by the events the printer already sees (one pass):
//! the sign-in timeline (`--signin`), the chat transcript (`--transcript`),
//! the presence and typing timeline (`--timeline`) and the reconstructed
//! roster (`--roster`). They need each event's `details` (the structured
//! fields of [`crate::xmpp::detail`]), so asking for a view turns them on.
//!
//! Memory is bounded by named limits: [`MAX_FLOWS`] sign-ins,
//! [`MAX_CONVERSATION_ENTRIES`] entries per conversation (a note says when
//! more were dropped), [`MAX_CONTACTS`] contacts, [`MAX_SEEN_IDS`] stanza
//! ids remembered for de-duplication.

pub mod chat;
pub mod roster;
pub mod signin;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Write};

use serde_json::Value;

use crate::model::{Dir, Event, Packet, Timestamp};

/// Flows whose sign-in is followed.
pub const MAX_FLOWS: usize = 10_000;
/// Entries (messages, typing, receipts) kept per conversation.
pub const MAX_CONVERSATION_ENTRIES: usize = 10_000;
/// Contacts followed by the timeline and the roster.
pub const MAX_CONTACTS: usize = 10_000;
/// (sender, id) pairs remembered to count each stanza once although it is
/// seen on the sender's and on the receiver's connection (and as carbons).
pub const MAX_SEEN_IDS: usize = 100_000;

/// Which views were asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
pub struct Wanted {
    pub signin: bool,
    pub transcript: bool,
    pub timeline: bool,
    pub roster: bool,
    pub markdown: bool,
}

impl Wanted {
    #[must_use]
    pub fn any(self) -> bool {
        self.signin || self.transcript || self.timeline || self.roster
    }
}

/// How the views are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Text,
    Json,
    Ndjson,
}

/// The bare JID (`local@domain`) of a JID (RFC 7622 §3.1).
#[must_use]
pub fn bare(jid: &str) -> String {
    jid.split('/').next().unwrap_or(jid).to_ascii_lowercase()
}

/// Does `jid` (an address seen on the wire) belong to the account `want`
/// (bare or full)?
#[must_use]
pub fn jid_matches(want: &str, jid: &str) -> bool {
    if want.contains('/') {
        jid.eq_ignore_ascii_case(want)
    } else {
        bare(jid) == bare(want)
    }
}

/// A bounded set remembering the most recent keys.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    /// True the first time a key is offered.
    pub(crate) fn first(&mut self, key: String) -> bool {
        if self.set.contains(&key) {
            return false;
        }
        if self.order.len() >= MAX_SEEN_IDS
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.set.insert(key.clone());
        self.order.push_back(key);
        true
    }
}

/// What every view needs: the time origin and each flow's account.
#[derive(Debug, Default)]
pub struct Common {
    pub first: Option<Timestamp>,
    /// Flow → bound full JID (RFC 6120 §7.6.1).
    pub account: HashMap<u32, String>,
}

impl Common {
    #[must_use]
    pub fn rel(&self, t: Timestamp) -> f64 {
        self.first.map_or(0.0, |f| t.since(f))
    }

    /// Who sent a stanza: its `from`, else (client to server) the flow's
    /// account (RFC 6120 §8.1.2.1: the server stamps it).
    #[must_use]
    pub fn sender(&self, e: &Event, from: Option<&str>) -> Option<String> {
        from.map(str::to_owned).or_else(|| match e.dir {
            Dir::ClientToServer => self.account.get(&e.flow).cloned(),
            Dir::ServerToClient => None,
        })
    }

    /// Who a stanza is for: its `to`, else (server to client) the account.
    #[must_use]
    pub fn recipient(&self, e: &Event, to: Option<&str>) -> Option<String> {
        to.map(str::to_owned).or_else(|| match e.dir {
            Dir::ServerToClient => self.account.get(&e.flow).cloned(),
            Dir::ClientToServer => None,
        })
    }
}

/// All the views asked for.
#[derive(Debug, Default)]
pub struct Views {
    pub wanted: Wanted,
    pub common: Common,
    pub signin: signin::Signin,
    pub chat: chat::Chat,
    pub roster: roster::Roster,
}

pub(crate) fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

impl Views {
    #[must_use]
    pub fn new(wanted: Wanted) -> Self {
        Self {
            wanted,
            ..Self::default()
        }
    }

    /// A frame: its time and flow (for the TCP connect of the sign-in).
    pub fn packet(&mut self, p: &Packet) {
        self.common.first.get_or_insert(p.ts);
        if let (Some(flow), Some(dir)) = (p.flow, p.dir) {
            self.signin.packet(flow, dir, p.ts, p.events.is_empty());
        }
        self.events(&p.events);
    }

    /// Events (of a frame, or flushed at the end).
    pub fn events(&mut self, events: &[Event]) {
        for e in events {
            self.common.first.get_or_insert(e.time);
            // The bound JID names the flow's account (RFC 6120 §7.6.1).
            if let Some(d) = &e.details
                && s(d, "child") == Some("bind")
                && s(d, "type") == Some("result")
                && let Some(j) = d.get("payload").and_then(|p| s(p, "jid"))
            {
                self.common.account.insert(e.flow, j.to_owned());
            }
            if self.wanted.signin {
                self.signin.event(&self.common, e);
            }
            if self.wanted.transcript || self.wanted.timeline || self.wanted.roster {
                self.chat.event(&self.common, e);
            }
            if self.wanted.roster {
                self.roster.event(&self.common, e);
            }
        }
    }

    /// Write every view asked for.
    ///
    /// # Errors
    /// The output fails.
    pub fn write(&self, out: &mut impl Write, style: Style) -> io::Result<()> {
        if self.wanted.signin {
            self.signin.write(out, &self.common, style)?;
        }
        if self.wanted.transcript {
            self.chat
                .write_transcript(out, &self.common, style, self.wanted.markdown)?;
        }
        if self.wanted.timeline {
            self.chat.write_timeline(out, &self.common, style)?;
        }
        if self.wanted.roster {
            self.roster.write(out, &self.chat, style)?;
        }
        Ok(())
    }
}

/// `--jid`: the flows that belong to one account, by bound JID, stream
/// `to` / `from` and stanza `from` / `to` (decided during a pre-pass).
#[derive(Debug, Default)]
pub struct JidFlows {
    pub want: String,
    pub flows: HashSet<u32>,
    account: HashMap<u32, String>,
}

impl JidFlows {
    #[must_use]
    pub fn new(want: &str) -> Self {
        Self {
            want: want.to_owned(),
            ..Self::default()
        }
    }

    pub fn event(&mut self, e: &Event) {
        if let Some(d) = &e.details
            && s(d, "child") == Some("bind")
            && s(d, "type") == Some("result")
            && let Some(j) = d.get("payload").and_then(|p| s(p, "jid"))
        {
            self.account.insert(e.flow, j.to_owned());
            if jid_matches(&self.want, j) {
                self.flows.insert(e.flow);
            }
            return;
        }
        // A flow bound to another account stays out even when it talks to us.
        if self.account.contains_key(&e.flow) {
            return;
        }
        // Stream `from` on a client-to-server header is the account
        // (RFC 6120 §4.7.1); a stanza's `to` from the server names it too.
        let own = match e.dir {
            Dir::ClientToServer => e.from.as_deref(),
            Dir::ServerToClient => e.to.as_deref(),
        };
        if own.is_some_and(|j| j.contains('@') && jid_matches(&self.want, j)) {
            self.flows.insert(e.flow);
        }
    }
}

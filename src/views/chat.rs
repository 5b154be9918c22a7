//! Conversations and presence: the transcript (`--transcript`) and the
//! presence / typing timeline (`--timeline`).
//!
//! Each stanza is counted once: the same message is seen on the sender's
//! connection, on the receiver's and as a carbon (XEP-0280); the
//! (sender, id) pair identifies it (RFC 6120 §8.1.3).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;
use serde_json::Value;

use super::{Common, MAX_CONTACTS, MAX_CONVERSATION_ENTRIES, Seen, Style, bare, s};
use crate::model::{Dir, Event, EventKind};

/// One line of a conversation.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry {
    Message {
        t: f64,
        from: String,
        to: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        body: String,
        /// XEP-0308: the body as first sent, when corrected.
        #[serde(skip_serializing_if = "Option::is_none")]
        original: Option<String>,
        /// XEP-0184: time the receipt came back.
        #[serde(skip_serializing_if = "Option::is_none")]
        received: Option<f64>,
        /// Ids of the corrections applied (XEP-0308): a receipt naming one
        /// of them is a receipt for this message too.
        #[serde(skip)]
        corrections: Vec<String>,
        /// The frame that completed the stanza (for the TUI's jump back).
        #[serde(skip)]
        frame: u64,
    },
    /// XEP-0085 chat state sent on its own.
    ChatState {
        t: f64,
        from: String,
        state: String,
        #[serde(skip)]
        frame: u64,
    },
}

impl Entry {
    /// The frame that completed the stanza.
    #[must_use]
    pub fn frame(&self) -> u64 {
        match self {
            Self::Message { frame, .. } | Self::ChatState { frame, .. } => *frame,
        }
    }
}

/// A chat state as a reader says it ("is typing…").
#[must_use]
pub fn chat_state_text(state: &str) -> &str {
    match state {
        "composing" => "is typing…",
        "paused" => "paused",
        "active" => "is active",
        "inactive" => "is inactive",
        "gone" => "left the conversation",
        other => other,
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Conversation {
    pub a: String,
    pub b: String,
    pub entries: Vec<Entry>,
    /// Entries dropped past [`MAX_CONVERSATION_ENTRIES`].
    pub dropped: u64,
}

/// A presence change of a contact (RFC 6121 §4.7).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PresenceChange {
    pub t: f64,
    /// available / away / chat / dnd / xa / unavailable.
    pub show: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Sent by the server for the contact (probe answer, RFC 6121 §4.3.2).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub from_server: bool,
    /// The frame that carried it (for the TUI's jump back).
    #[serde(skip)]
    pub frame: u64,
}

/// XEP-0085 §5.1: composing, ended by paused / active / a message.
#[derive(Debug, Clone, Serialize)]
pub struct Typing {
    pub to: String,
    pub start: f64,
    pub end: Option<f64>,
    pub ended_by: Option<String>,
    pub duration: Option<f64>,
    /// The frame of the first `composing` (for the TUI's jump back).
    #[serde(skip)]
    pub frame: u64,
}

/// Reply latency: a message to this contact, then its first composing and
/// its reply.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub peer: String,
    pub message_at: f64,
    pub composing_after: Option<f64>,
    pub reply_after: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Contact {
    pub jid: String,
    pub presence: Vec<PresenceChange>,
    pub typing: Vec<Typing>,
    pub latency: Vec<Latency>,
}

#[derive(Debug, Default)]
pub struct Chat {
    pub conversations: BTreeMap<(String, String), Conversation>,
    pub contacts: BTreeMap<String, Contact>,
    seen: Seen,
}

impl Chat {
    fn contact(&mut self, jid: &str) -> Option<&mut Contact> {
        if !self.contacts.contains_key(jid) && self.contacts.len() >= MAX_CONTACTS {
            return None;
        }
        Some(
            self.contacts
                .entry(jid.to_owned())
                .or_insert_with(|| Contact {
                    jid: jid.to_owned(),
                    ..Contact::default()
                }),
        )
    }

    pub fn event(&mut self, c: &Common, e: &Event) {
        if e.kind != EventKind::Stanza {
            return;
        }
        let Some(d) = &e.details else { return };
        match s(d, "element") {
            Some("message") => {
                // XEP-0280: a carbon is the inner message, counted once.
                let inner = match d.get("carbon") {
                    Some(cb) => {
                        // §11: a copy is only genuine when the server sends
                        // it from the account's own bare JID; anything else
                        // is a forgery a client must ignore, and so do we.
                        let own = c.recipient(e, s(d, "to")).map(|j| bare(&j));
                        if e.dir != Dir::ServerToClient
                            || own.is_none()
                            || s(d, "from").map(bare) != own
                        {
                            return;
                        }
                        cb.get("message").unwrap_or(d)
                    }
                    None => d,
                };
                self.message(c, e, inner);
            }
            Some("presence") => self.presence(c, e, d),
            _ => {}
        }
    }

    fn message(&mut self, c: &Common, e: &Event, d: &Value) {
        let Some(from) = c.sender(e, s(d, "from")) else {
            return;
        };
        let Some(to) = c.recipient(e, s(d, "to")) else {
            return;
        };
        if matches!(s(d, "type"), Some("groupchat" | "error" | "headline")) {
            return;
        }
        let (fb, tb) = (bare(&from), bare(&to));
        if let Some(id) = s(d, "id")
            && !self.seen.first(format!("m\u{0}{fb}\u{0}{tb}\u{0}{id}"))
        {
            return;
        }
        let t = c.rel(e.time);
        let key = if fb <= tb {
            (fb.clone(), tb.clone())
        } else {
            (tb.clone(), fb.clone())
        };
        let body = s(d, "body").map(str::to_owned);
        let state = s(d, "chat_state").map(str::to_owned);
        // XEP-0184 §5: a receipt names the id of the message received.
        if let Some(rid) = s(d, "receipt_received") {
            if let Some(conv) = self.conversations.get_mut(&key) {
                for en in conv.entries.iter_mut().rev() {
                    if let Entry::Message {
                        id: Some(i),
                        received,
                        from: mf,
                        corrections,
                        ..
                    } = en
                        && (i == rid || corrections.iter().any(|c| c == rid))
                        && bare(mf) == tb
                    {
                        received.get_or_insert(t);
                        break;
                    }
                }
            }
            if body.is_none() {
                return;
            }
        }
        // Typing episodes and reply latency (timeline).
        if let Some(ct) = self.contact(&fb) {
            let open = ct
                .typing
                .iter_mut()
                .rev()
                .find(|ty| ty.to == tb && ty.end.is_none());
            match (state.as_deref(), &body, open) {
                (Some("composing"), None, None) => ct.typing.push(Typing {
                    to: tb.clone(),
                    start: t,
                    end: None,
                    ended_by: None,
                    duration: None,
                    frame: e.frame,
                }),
                (Some("composing"), None, Some(_)) => {}
                (st, b, Some(ty)) => {
                    ty.end = Some(t);
                    ty.duration = Some(t - ty.start);
                    ty.ended_by = Some(if b.is_some() {
                        "message".to_owned()
                    } else {
                        st.unwrap_or("other").to_owned()
                    });
                }
                _ => {}
            }
            for l in ct.latency.iter_mut().filter(|l| l.peer == tb) {
                if state.as_deref() == Some("composing") && l.composing_after.is_none() {
                    l.composing_after = Some(t - l.message_at);
                }
                if body.is_some() && l.reply_after.is_none() {
                    l.reply_after = Some(t - l.message_at);
                }
            }
        }
        if body.is_some()
            && let Some(peer) = self.contact(&tb)
        {
            peer.latency.push(Latency {
                peer: fb.clone(),
                message_at: t,
                composing_after: None,
                reply_after: None,
            });
            let n = peer.latency.len();
            if n > MAX_CONVERSATION_ENTRIES {
                peer.latency.drain(..n - MAX_CONVERSATION_ENTRIES);
            }
        }
        let conv = self
            .conversations
            .entry(key.clone())
            .or_insert_with(|| Conversation {
                a: key.0.clone(),
                b: key.1.clone(),
                ..Conversation::default()
            });
        if let Some(body) = body {
            // XEP-0308 §4: the correction replaces the last message with that
            // id from the same sender; the original is kept.
            if let Some(rid) = s(d, "replaces").filter(|r| !r.is_empty()) {
                for en in conv.entries.iter_mut().rev() {
                    if let Entry::Message {
                        id: Some(i),
                        from: mf,
                        body: mb,
                        original,
                        corrections,
                        ..
                    } = en
                        // Some clients name the previous correction rather
                        // than the first message: either finds the entry.
                        && (i == rid || corrections.iter().any(|c| c == rid))
                        && bare(mf) == fb
                    {
                        if original.is_none() {
                            *original = Some(mb.clone());
                        }
                        *mb = body;
                        if let Some(cid) = s(d, "id")
                            && corrections.len() < MAX_CORRECTIONS
                        {
                            corrections.push(cid.to_owned());
                        }
                        return;
                    }
                }
            }
            push(
                conv,
                Entry::Message {
                    t,
                    from: fb,
                    to: tb,
                    id: s(d, "id").map(str::to_owned),
                    body,
                    original: None,
                    received: None,
                    corrections: Vec::new(),
                    frame: e.frame,
                },
            );
        } else if let Some(st) = state {
            push(
                conv,
                Entry::ChatState {
                    t,
                    from: fb,
                    state: st,
                    frame: e.frame,
                },
            );
        }
    }

    fn presence(&mut self, c: &Common, e: &Event, d: &Value) {
        let typ = s(d, "type").unwrap_or("available");
        if !matches!(typ, "available" | "unavailable") {
            return;
        }
        let Some(from) = c.sender(e, s(d, "from")) else {
            return;
        };
        // Directed presence to a room or a peer is not the contact's state.
        if d.get("muc").is_some() || d.get("muc_join").is_some() {
            return;
        }
        let fb = bare(&from);
        if let Some(id) = s(d, "id")
            && !self.seen.first(format!("p\u{0}{fb}\u{0}{id}"))
        {
            return;
        }
        let show = if typ == "unavailable" {
            "unavailable"
        } else {
            s(d, "show").unwrap_or("available")
        };
        let change = PresenceChange {
            t: c.rel(e.time),
            show: show.to_owned(),
            status: s(d, "status").map(str::to_owned),
            // RFC 6121 §4.3.2: the server answers a probe from the bare JID.
            from_server: !from.contains('/') && s(d, "id").is_none(),
            frame: e.frame,
        };
        let Some(ct) = self.contact(&fb) else { return };
        if let Some(last) = ct.presence.last()
            && last.show == change.show
            && last.status == change.status
            && s(d, "id").is_none()
        {
            return;
        }
        if ct.presence.len() < MAX_CONVERSATION_ENTRIES {
            ct.presence.push(change);
        }
    }

    /// # Errors
    /// The output fails.
    pub fn write_transcript(
        &self,
        out: &mut impl Write,
        _c: &Common,
        style: Style,
        markdown: bool,
    ) -> io::Result<()> {
        match style {
            Style::Json => {
                let v: Vec<&Conversation> = self.conversations.values().collect();
                serde_json::to_writer_pretty(
                    &mut *out,
                    &serde_json::json!({ "conversations": v }),
                )?;
                return writeln!(out);
            }
            Style::Ndjson => {
                for cv in self.conversations.values() {
                    let mut v = serde_json::to_value(cv).unwrap_or(Value::Null);
                    if let Some(o) = v.as_object_mut() {
                        o.insert("kind".into(), "conversation".into());
                    }
                    serde_json::to_writer(&mut *out, &v)?;
                    writeln!(out)?;
                }
                return Ok(());
            }
            Style::Text => {}
        }
        for cv in self.conversations.values() {
            let mut b = String::new();
            let n = cv
                .entries
                .iter()
                .filter(|e| matches!(e, Entry::Message { .. }))
                .count();
            if markdown {
                let _ = writeln!(b, "## {} ↔ {} ({n} messages)\n", cv.a, cv.b);
            } else {
                let _ = writeln!(b, "Conversation {} ↔ {} ({n} messages)", cv.a, cv.b);
            }
            for en in &cv.entries {
                match en {
                    Entry::Message {
                        t,
                        from,
                        body,
                        original,
                        received,
                        ..
                    } => {
                        let mut extra = String::new();
                        if let Some(o) = original {
                            let _ = write!(extra, " (corrected; originally: {o:?})");
                        }
                        if let Some(r) = received {
                            let _ = write!(extra, " [received {:.3} s later]", r - t);
                        }
                        if markdown {
                            let body = body.replace('\n', "  \n> ");
                            let _ = writeln!(b, "- `{t:>10.3}` **{from}**: {body}{extra}");
                        } else {
                            let body = body.replace('\n', "\n               ");
                            let _ = writeln!(b, "  [{t:>10.3}] {from}: {body}{extra}");
                        }
                    }
                    Entry::ChatState { t, from, state, .. } => {
                        let what = chat_state_text(state);
                        if markdown {
                            let _ = writeln!(b, "- `{t:>10.3}` _{from} {what}_");
                        } else {
                            let _ = writeln!(b, "  [{t:>10.3}] ({from} {what})");
                        }
                    }
                }
            }
            if cv.dropped > 0 {
                let _ = writeln!(
                    b,
                    "  note: {} later entries dropped (limit {MAX_CONVERSATION_ENTRIES} per conversation)",
                    cv.dropped
                );
            }
            b.push('\n');
            out.write_all(b.as_bytes())?;
        }
        Ok(())
    }

    /// # Errors
    /// The output fails.
    pub fn write_timeline(
        &self,
        out: &mut impl Write,
        _c: &Common,
        style: Style,
    ) -> io::Result<()> {
        if style != Style::Text {
            for ct in self.contacts.values() {
                let mut v = serde_json::to_value(ct).unwrap_or(Value::Null);
                if let Some(o) = v.as_object_mut() {
                    o.insert("kind".into(), "timeline".into());
                }
                serde_json::to_writer(&mut *out, &v)?;
                writeln!(out)?;
            }
            return Ok(());
        }
        for ct in self.contacts.values() {
            let mut b = String::new();
            let _ = writeln!(b, "Contact {}", ct.jid);
            let _ = writeln!(
                b,
                "  {:>10}  {:<10} {:<12} detail",
                "time (s)", "what", "state"
            );
            let mut rows: Vec<(f64, String)> = Vec::new();
            for p in &ct.presence {
                rows.push((
                    p.t,
                    format!(
                        "  {:>10.3}  {:<10} {:<12} {}{}",
                        p.t,
                        "presence",
                        p.show,
                        p.status
                            .as_deref()
                            .map(|s| format!("{s:?}"))
                            .unwrap_or_default(),
                        if p.from_server {
                            " (from the server)"
                        } else {
                            ""
                        }
                    ),
                ));
            }
            for ty in &ct.typing {
                rows.push((
                    ty.start,
                    format!(
                        "  {:>10.3}  {:<10} {:<12} to {}{}",
                        ty.start,
                        "typing",
                        ty.ended_by.as_deref().unwrap_or("(open)"),
                        ty.to,
                        ty.duration
                            .map(|d| format!(", {d:.3} s"))
                            .unwrap_or_default()
                    ),
                ));
            }
            for l in &ct.latency {
                rows.push((
                    l.message_at,
                    format!(
                        "  {:>10.3}  {:<10} {:<12} from {}: composing after {}, reply after {}",
                        l.message_at,
                        "latency",
                        "",
                        l.peer,
                        l.composing_after
                            .map_or("-".to_owned(), |x| format!("{x:.3} s")),
                        l.reply_after
                            .map_or("-".to_owned(), |x| format!("{x:.3} s")),
                    ),
                ));
            }
            rows.sort_by(|x, y| x.0.total_cmp(&y.0));
            for (_, r) in rows {
                let _ = writeln!(b, "{r}");
            }
            b.push('\n');
            out.write_all(b.as_bytes())?;
        }
        Ok(())
    }
}

/// Correction ids remembered per message (for their receipts); a message
/// corrected more often keeps its text up to date all the same.
const MAX_CORRECTIONS: usize = 32;

fn push(conv: &mut Conversation, e: Entry) {
    if conv.entries.len() < MAX_CONVERSATION_ENTRIES {
        conv.entries.push(e);
    } else {
        conv.dropped += 1;
    }
}

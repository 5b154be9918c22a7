//! The story views inside the TUI, over the headless view modules
//! ([`crate::views`]): the sign-in timeline (`S`), the chat transcript
//! (`T`), the presence and typing timeline (`P`) and the roster (`R`).
//!
//! Their data is computed on a background thread by reading the capture
//! file again ([`compute`]), so a file that is still growing (a live
//! savefile) is read again with `r`. [`items`] lays each view out as rows,
//! once per result; the widget ([`StoryView`]) draws the visible ones with
//! ratatui tables, and the presence and typing strips cell by cell.

use std::sync::Arc;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table, Widget};

use super::app::App;
use super::layout;
use super::theme::Theme;
use super::view::{fill, pane_line, put, title_line};
use crate::capture::{End, FileSource};
use crate::dissect::{Config, Dissector};
use crate::model::{Event, Packet, Timestamp};
use crate::views::{self, JidFlows, Views, Wanted, chat, roster, signin};

/// The four views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Signin,
    Transcript,
    Timeline,
    Roster,
}

impl Kind {
    pub const ALL: [Self; 4] = [Self::Signin, Self::Transcript, Self::Timeline, Self::Roster];

    /// The key that opens it.
    #[must_use]
    pub fn key(self) -> char {
        match self {
            Self::Signin => 'S',
            Self::Transcript => 'T',
            Self::Timeline => 'P',
            Self::Roster => 'R',
        }
    }

    #[must_use]
    pub fn from_key(c: char) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.key() == c)
    }

    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Self::Signin => "Sign-in timeline",
            Self::Transcript => "Chat transcript",
            Self::Timeline => "Presence & typing timeline",
            Self::Roster => "Roster",
        }
    }

    #[must_use]
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What the views found in the capture.
#[derive(Debug, Clone, Default)]
pub struct StoryData {
    pub signin: Vec<signin::Flow>,
    pub conversations: Vec<chat::Conversation>,
    pub contacts: Vec<chat::Contact>,
    pub roster: Vec<roster::Item>,
    /// Seconds from the first frame to the last.
    pub span: f64,
    /// Frames read.
    pub frames: u64,
    /// Why the reading stopped early, if it did (a file cut short, or
    /// still being written).
    pub problem: Option<String>,
}

/// The meaning of a row, for its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Dim,
    /// A flow, conversation, contact or account heading.
    Head,
    Ok,
    Failed,
    Missing,
    Message,
    Typing,
    Receipt,
    Presence,
}

/// What one row shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// A heading over the rows that follow.
    Head(String),
    /// Table cells, in the view's columns; `extra` is added to the last
    /// cell in its own colour (a receipt, a correction mark).
    Cells {
        cells: Vec<String>,
        extra: Option<(String, Tone)>,
    },
    /// A contact's presence (or typing) drawn over the capture's time.
    Strip {
        contact: usize,
        typing: bool,
    },
    /// The time axis of the strips.
    Axis,
    Blank,
}

/// One row of a view.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub shape: Shape,
    pub tone: Tone,
    /// The frame to jump to with Enter.
    pub frame: Option<u64>,
}

/// Rows kept per view (the views' own limits bound them already; this
/// bounds the TUI's copy too).
pub const MAX_ROWS: usize = 1_000_000;

/// Text from the wire made safe to draw: control characters (which a
/// terminal would act on) become spaces.
fn clean(s: String) -> String {
    if s.chars().any(char::is_control) {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    } else {
        s
    }
}

impl Item {
    fn head(text: String) -> Self {
        Self {
            shape: Shape::Head(clean(text)),
            tone: Tone::Head,
            frame: None,
        }
    }

    fn cells(cells: Vec<String>, tone: Tone, frame: Option<u64>) -> Self {
        Self {
            shape: Shape::Cells {
                cells: cells.into_iter().map(clean).collect(),
                extra: None,
            },
            tone,
            frame: frame.filter(|f| *f > 0),
        }
    }

    fn blank() -> Self {
        Self {
            shape: Shape::Blank,
            tone: Tone::Plain,
            frame: None,
        }
    }

    /// The row's text, as a reader sees it (for tests and search).
    #[must_use]
    pub fn text(&self) -> String {
        match &self.shape {
            Shape::Head(s) => s.clone(),
            Shape::Cells { cells, extra } => {
                let mut s = cells.join(" ");
                if let Some((e, _)) = extra {
                    s.push(' ');
                    s.push_str(e);
                }
                s
            }
            Shape::Strip { typing, .. } => if *typing { "typing" } else { "presence" }.into(),
            Shape::Axis | Shape::Blank => String::new(),
        }
    }
}

/// A finished computation.
#[derive(Debug, Clone)]
pub struct StoryResult {
    pub generation: u64,
    pub data: Arc<StoryData>,
    /// Rows of each view, by [`Kind::index`].
    pub items: Arc<[Vec<Item>; 4]>,
    /// Columns of the widest sender in the transcript (at most
    /// [`MAX_SENDER`]).
    pub sender_width: u16,
}

/// The transcript's sender column is at most this wide.
const MAX_SENDER: u16 = 32;

impl StoryResult {
    #[must_use]
    pub fn new(generation: u64, data: StoryData) -> Self {
        let items = Kind::ALL.map(|k| items(&data, k));
        let sender_width = data
            .conversations
            .iter()
            .flat_map(|c| c.entries.iter())
            .map(|e| match e {
                chat::Entry::Message { from, .. } | chat::Entry::ChatState { from, .. } => {
                    unicode_width::UnicodeWidthStr::width(from.as_str())
                }
            })
            .max()
            .map_or(4, |w| {
                u16::try_from(w).unwrap_or(MAX_SENDER).clamp(4, MAX_SENDER)
            });
        Self {
            generation,
            data: Arc::new(data),
            items: Arc::new(items),
            sender_width,
        }
    }
}

/// The story views' state in the app.
#[derive(Debug, Clone, Default)]
pub struct StoryState {
    pub result: Option<StoryResult>,
    /// A computation is under way (its generation).
    pub computing: Option<u64>,
    /// Rows the index had when the shown result was asked for, and
    /// whether loading was done then.
    pub asked_at: (usize, bool),
    /// The same, for the computation under way.
    pub pending_at: (usize, bool),
    /// Selected row and first row drawn, per view.
    pub cursor: [(usize, usize); 4],
    /// `--jid`: only this account's flows.
    pub jid: Option<String>,
}

impl StoryState {
    /// The rows of view `k` (none before the first result).
    #[must_use]
    pub fn rows(&self, k: Kind) -> &[Item] {
        self.result
            .as_ref()
            .and_then(|r| r.items.get(k.index()))
            .map_or(&[], Vec::as_slice)
    }

    /// Is the shown result older than the capture as loaded now?
    #[must_use]
    pub fn stale(&self, rows: usize, done: bool) -> bool {
        self.result.is_none() || self.asked_at != (rows, done)
    }
}

/// One pass over the capture: every frame (dissected) and what left the
/// pipeline after it, then what the end flushed. Returns the frames read
/// and why the reading stopped early, if it did.
fn pass(
    path: &str,
    cfg: &Config,
    count: Option<u64>,
    go_on: &dyn Fn() -> bool,
    each: &mut dyn FnMut(&Packet, &[Event]),
) -> (u64, Option<String>) {
    let mut src = match FileSource::open(path) {
        Ok(s) => s,
        Err(e) => return (0, Some(e.to_string())),
    };
    let lt = src.linktype();
    let mut d = Dissector::new(Config {
        keep_xml: true,
        keep_tree: false,
        ..cfg.clone()
    });
    let mut p = Packet::default();
    let mut last = 0u64;
    let mut problem = None;
    loop {
        if count.is_some_and(|c| last >= c) {
            break;
        }
        if last.is_multiple_of(4096) && !go_on() {
            return (last, Some("cancelled".into()));
        }
        let f = match src.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                problem = Some(match FileSource::classify(&e) {
                    Some(End::Truncated(_)) => format!(
                        "the file ends inside a record after frame {last} (cut short, or still being written): r reads it again"
                    ),
                    _ => e.to_string(),
                });
                break;
            }
        };
        last = f.number;
        d.dissect(f.number, f.ts, lt, f.data, f.len, &mut p);
        let (flushed, _) = d.take_flushed();
        each(&p, &flushed);
    }
    d.finish(last);
    let (flushed, _) = d.take_flushed();
    each(&Packet::default(), &flushed);
    (last, problem)
}

/// Compute the four views from the capture at `path` (`jid`: only that
/// account's flows, decided in a first pass as `--jid` does headless).
/// `go_on` returning false cancels.
#[must_use]
pub fn compute(
    path: &str,
    cfg: &Config,
    count: Option<u64>,
    jid: Option<&str>,
    go_on: &dyn Fn() -> bool,
) -> StoryData {
    let mut data = StoryData::default();
    if path == "-" {
        data.problem = Some(
            "standard input cannot be read again: the story views need a capture file (-r FILE)"
                .into(),
        );
        return data;
    }
    let keep = jid.map(|j| {
        let mut f = JidFlows::new(j);
        pass(path, cfg, count, go_on, &mut |p, flushed| {
            for e in p.events.iter().chain(flushed) {
                f.event(e);
            }
        });
        f.flows
    });
    let mut v = Views::new(Wanted {
        signin: true,
        transcript: true,
        timeline: true,
        roster: true,
        markdown: false,
    });
    let mut first: Option<Timestamp> = None;
    let mut last_ts: Option<Timestamp> = None;
    let mut kept: Vec<Event> = Vec::new();
    let (frames, problem) = pass(path, cfg, count, go_on, &mut |p, flushed| {
        if p.number > 0 {
            first.get_or_insert(p.ts);
            last_ts = Some(p.ts);
        }
        match &keep {
            Some(k) => {
                if p.number > 0 {
                    v.common.first.get_or_insert(p.ts);
                }
                if p.flow.is_some_and(|f| k.contains(&f)) {
                    v.packet(p);
                }
                kept.clear();
                kept.extend(flushed.iter().filter(|e| k.contains(&e.flow)).cloned());
                v.events(&kept);
            }
            None => {
                if p.number > 0 {
                    v.packet(p);
                }
                v.events(flushed);
            }
        }
    });
    data.frames = frames;
    data.problem = problem;
    if let (Some(a), Some(b)) = (first, last_ts) {
        data.span = b.since(a).max(0.0);
    }
    data.signin = v.signin.flows();
    data.conversations = v.chat.conversations.values().cloned().collect();
    data.contacts = v.chat.contacts.values().cloned().collect();
    data.roster = v.roster.items(&v.chat);
    data
}

fn secs(x: f64) -> String {
    format!("{x:.3}")
}

/// The local part of a bare JID ("bob" of bob@example.org), or the JID.
fn local(jid: &str) -> &str {
    jid.split_once('@').map_or(jid, |(l, _)| l)
}

/// Lay view `k` out as rows.
#[must_use]
pub fn items(d: &StoryData, k: Kind) -> Vec<Item> {
    let mut out = Vec::new();
    match k {
        Kind::Signin => signin_items(d, &mut out),
        Kind::Transcript => transcript_items(d, &mut out),
        Kind::Timeline => timeline_items(d, &mut out),
        Kind::Roster => roster_items(d, &mut out),
    }
    if out.len() > MAX_ROWS {
        let more = out.len() - MAX_ROWS;
        out.truncate(MAX_ROWS);
        out.push(Item::cells(
            vec![format!("… {more} more rows not shown (limit {MAX_ROWS})")],
            Tone::Missing,
            None,
        ));
    }
    out
}

fn signin_items(d: &StoryData, out: &mut Vec<Item>) {
    if d.signin.is_empty() {
        out.push(Item::head("No XMPP sign-in in this capture".into()));
        return;
    }
    for f in &d.signin {
        let who = f.jid().map(|j| format!(" · {j}")).unwrap_or_default();
        out.push(Item::head(format!(
            "Flow {}: {} → {}{who}",
            f.flow, f.client, f.server
        )));
        for st in &f.steps {
            let (mark, tone, detail) = if st.ok {
                ("✓", Tone::Ok, st.detail.clone())
            } else {
                ("✗", Tone::Failed, format!("FAILED: {}", st.detail))
            };
            out.push(Item::cells(
                vec![
                    mark.into(),
                    secs(st.at),
                    secs(st.wait),
                    st.step.into(),
                    detail,
                ],
                tone,
                Some(st.frame),
            ));
        }
        for m in &f.missing {
            out.push(Item::cells(
                vec![
                    "?".into(),
                    "-".into(),
                    "-".into(),
                    (*m).into(),
                    format!("MISSING: {}", f.missing_reason(m)),
                ],
                Tone::Missing,
                None,
            ));
        }
        out.push(Item::blank());
    }
}

fn transcript_items(d: &StoryData, out: &mut Vec<Item>) {
    if d.conversations.is_empty() {
        out.push(Item::head("No one-to-one chat in this capture".into()));
        return;
    }
    for cv in &d.conversations {
        let n = cv
            .entries
            .iter()
            .filter(|e| matches!(e, chat::Entry::Message { .. }))
            .count();
        out.push(Item::head(format!("{} ↔ {} ({n} messages)", cv.a, cv.b)));
        for en in &cv.entries {
            match en {
                chat::Entry::Message {
                    t,
                    from,
                    body,
                    original,
                    received,
                    frame,
                    ..
                } => {
                    let mut lines = body.lines();
                    let first_line = lines.next().unwrap_or_default().to_owned();
                    let mut it = Item::cells(
                        vec![secs(*t), from.clone(), first_line],
                        Tone::Message,
                        Some(*frame),
                    );
                    let mut extra = Vec::new();
                    if original.is_some() {
                        extra.push("✎ corrected".to_owned());
                    }
                    if let Some(r) = received {
                        extra.push(format!("✓ received +{:.3} s", r - t));
                    }
                    if let Shape::Cells { extra: e, .. } = &mut it.shape
                        && !extra.is_empty()
                    {
                        *e = Some((extra.join(" "), Tone::Receipt));
                    }
                    out.push(it);
                    for more in lines {
                        out.push(Item::cells(
                            vec![String::new(), String::new(), more.to_owned()],
                            Tone::Message,
                            Some(*frame),
                        ));
                    }
                    if let Some(o) = original {
                        out.push(Item::cells(
                            vec![
                                String::new(),
                                String::new(),
                                format!("originally: {}", o.replace('\n', " ⏎ ")),
                            ],
                            Tone::Dim,
                            Some(*frame),
                        ));
                    }
                }
                chat::Entry::ChatState {
                    t,
                    from,
                    state,
                    frame,
                } => {
                    out.push(Item::cells(
                        vec![
                            secs(*t),
                            from.clone(),
                            format!("{} {}", local(from), chat::chat_state_text(state)),
                        ],
                        Tone::Typing,
                        Some(*frame),
                    ));
                }
            }
        }
        if cv.dropped > 0 {
            out.push(Item::cells(
                vec![
                    String::new(),
                    String::new(),
                    format!(
                        "{} later entries dropped (limit {} per conversation)",
                        cv.dropped,
                        views::MAX_CONVERSATION_ENTRIES
                    ),
                ],
                Tone::Missing,
                None,
            ));
        }
        out.push(Item::blank());
    }
}

fn timeline_items(d: &StoryData, out: &mut Vec<Item>) {
    if d.contacts.is_empty() {
        out.push(Item::head(
            "No presence or chat states in this capture".into(),
        ));
        return;
    }
    out.push(Item {
        shape: Shape::Axis,
        tone: Tone::Dim,
        frame: None,
    });
    for (i, ct) in d.contacts.iter().enumerate() {
        let now = ct
            .presence
            .last()
            .map(|p| match &p.status {
                Some(s) => format!(" · last: {} \"{s}\"", p.show),
                None => format!(" · last: {}", p.show),
            })
            .unwrap_or_default();
        out.push(Item::head(format!("{}{now}", ct.jid)));
        out.push(Item {
            shape: Shape::Strip {
                contact: i,
                typing: false,
            },
            tone: Tone::Presence,
            frame: None,
        });
        out.push(Item {
            shape: Shape::Strip {
                contact: i,
                typing: true,
            },
            tone: Tone::Typing,
            frame: None,
        });
        let mut rows: Vec<(f64, Item)> = Vec::new();
        for p in &ct.presence {
            let mut detail = p
                .status
                .as_deref()
                .map(|s| format!("\"{s}\""))
                .unwrap_or_default();
            if p.from_server {
                detail.push_str(" (from the server)");
            }
            rows.push((
                p.t,
                Item::cells(
                    vec![secs(p.t), "presence".into(), p.show.clone(), detail],
                    Tone::Presence,
                    Some(p.frame),
                ),
            ));
        }
        for ty in &ct.typing {
            let dur = ty
                .duration
                .map(|x| format!(", typed for {x:.3} s"))
                .unwrap_or_else(|| ", still typing at the end".into());
            rows.push((
                ty.start,
                Item::cells(
                    vec![
                        secs(ty.start),
                        "typing".into(),
                        ty.ended_by.clone().unwrap_or_else(|| "(open)".into()),
                        format!("to {}{dur}", ty.to),
                    ],
                    Tone::Typing,
                    Some(ty.frame),
                ),
            ));
        }
        for l in &ct.latency {
            let f = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{x:.3} s"));
            rows.push((
                l.message_at,
                Item::cells(
                    vec![
                        secs(l.message_at),
                        "reply".into(),
                        String::new(),
                        format!(
                            "after {}'s message: typing {}, reply {}",
                            l.peer,
                            f(l.composing_after),
                            f(l.reply_after)
                        ),
                    ],
                    Tone::Receipt,
                    None,
                ),
            ));
        }
        rows.sort_by(|x, y| x.0.total_cmp(&y.0));
        out.extend(rows.into_iter().map(|(_, it)| it));
        out.push(Item::blank());
    }
}

fn roster_items(d: &StoryData, out: &mut Vec<Item>) {
    if d.roster.is_empty() {
        out.push(Item::head("No roster in this capture".into()));
        return;
    }
    let mut last = "";
    for it in &d.roster {
        if it.account != last {
            if !last.is_empty() {
                out.push(Item::blank());
            }
            let n = d.roster.iter().filter(|i| i.account == it.account).count();
            out.push(Item::head(format!(
                "Roster of {} ({n} contacts)",
                it.account
            )));
            last = &it.account;
        }
        let mut sub = it.subscription.clone();
        if let Some(g) = &it.google_t {
            sub.push_str(&format!(" gr:t={g}"));
        }
        out.push(Item::cells(
            vec![
                it.contact.clone(),
                it.name.clone().unwrap_or_else(|| "-".into()),
                if it.groups.is_empty() {
                    "-".into()
                } else {
                    it.groups.join(", ")
                },
                sub,
                it.ask.clone().unwrap_or_else(|| "-".into()),
                it.last_presence.clone().unwrap_or_else(|| "-".into()),
            ],
            Tone::Plain,
            None,
        ));
    }
}

/// Columns whose cells are numbers, aligned right.
fn numeric(k: Kind, col: usize) -> bool {
    match k {
        Kind::Signin => col == 1 || col == 2,
        Kind::Transcript | Kind::Timeline => col == 0,
        Kind::Roster => false,
    }
}

/// The column headers and widths of a view's table.
fn columns(k: Kind, sender: u16) -> (&'static [&'static str], Vec<Constraint>) {
    use Constraint::{Fill, Length};
    match k {
        Kind::Signin => (
            &["", "at (s)", "wait (s)", "step", "detail"],
            vec![Length(1), Length(9), Length(9), Length(16), Fill(1)],
        ),
        Kind::Transcript => (
            &["time (s)", "from", "message"],
            vec![Length(9), Length(sender), Fill(1)],
        ),
        Kind::Timeline => (
            &["time (s)", "what", "state", "detail"],
            vec![Length(9), Length(8), Length(11), Fill(1)],
        ),
        Kind::Roster => (
            &[
                "contact",
                "name",
                "groups",
                "subscription",
                "ask",
                "last presence",
            ],
            vec![Fill(3), Fill(2), Fill(2), Length(12), Length(9), Fill(3)],
        ),
    }
}

fn tone_style(t: Theme, tone: Tone) -> Style {
    use super::index::Cat;
    match tone {
        Tone::Plain => Style::new(),
        Tone::Dim => t.dim(),
        Tone::Head => t
            .cat(Cat::Stream)
            .add_modifier(ratatui::style::Modifier::BOLD),
        Tone::Ok => t.ok(),
        Tone::Failed => t.error(),
        Tone::Missing => t.note(2),
        Tone::Message => t.cat(Cat::Message),
        Tone::Typing => t.typing(),
        Tone::Receipt => t.cat(Cat::Iq),
        Tone::Presence => t.cat(Cat::Presence),
    }
}

/// Label width of the strips (and of the axis).
const STRIP_LABEL: u16 = 10;

/// The presence of a contact at time `x` (None: not known yet).
fn show_at(ct: &chat::Contact, x: f64) -> Option<&str> {
    let i = ct.presence.partition_point(|p| p.t <= x);
    ct.presence.get(i.checked_sub(1)?).map(|p| p.show.as_str())
}

/// A cell of a presence strip: its symbol (different per state so that
/// it reads without colour) and colour.
fn show_cell(t: Theme, show: Option<&str>) -> (&'static str, Style) {
    match show {
        None => (" ", Style::new()),
        Some("available" | "chat") => ("█", t.presence("available")),
        Some("away") => ("▓", t.presence("away")),
        Some("xa") => ("▒", t.presence("xa")),
        Some("dnd") => ("▚", t.presence("dnd")),
        Some("unavailable") => ("·", t.presence("unavailable")),
        Some(_) => ("?", t.dim()),
    }
}

fn draw_strip(d: &StoryData, contact: usize, typing: bool, area: Rect, buf: &mut Buffer, t: Theme) {
    let Some(ct) = d.contacts.get(contact) else {
        return;
    };
    let label = if typing { " typing" } else { " presence" };
    put(buf, area, 0, &Line::styled(label, t.dim()));
    let w = area.width.saturating_sub(STRIP_LABEL);
    if w == 0 {
        return;
    }
    let span = if d.span > 0.0 { d.span } else { 1.0 };
    // Times of the messages the contact sent.
    let sent: Vec<f64> = if typing {
        d.conversations
            .iter()
            .flat_map(|c| c.entries.iter())
            .filter_map(|e| match e {
                chat::Entry::Message { t, from, .. } if *from == ct.jid => Some(*t),
                _ => None,
            })
            .collect()
    } else {
        Vec::new()
    };
    for x in 0..w {
        let lo = span * f64::from(x) / f64::from(w);
        let hi = span * f64::from(x + 1) / f64::from(w);
        let mid = (lo + hi) / 2.0;
        let (sym, style) = if typing {
            if sent.iter().any(|s| *s >= lo && *s < hi) {
                ("●", t.cat(super::index::Cat::Message))
            } else if ct.typing.iter().any(|ty| {
                let end = ty.end.unwrap_or(span);
                ty.start < hi && end >= lo
            }) {
                ("▬", t.typing())
            } else {
                (" ", Style::new())
            }
        } else {
            show_cell(t, show_at(ct, mid))
        };
        if let Some(c) = buf.cell_mut((area.x + STRIP_LABEL + x, area.y)) {
            c.set_symbol(sym).set_style(style);
        }
    }
}

fn draw_axis(d: &StoryData, area: Rect, buf: &mut Buffer, t: Theme) {
    put(buf, area, 0, &Line::styled(" time (s)", t.dim()));
    let w = area.width.saturating_sub(STRIP_LABEL);
    if w < 8 {
        return;
    }
    let mut s: Vec<char> = vec!['─'; usize::from(w)];
    let ticks = (usize::from(w) / 16).clamp(1, 8);
    for k in 0..=ticks {
        #[allow(clippy::cast_precision_loss)]
        let frac = k as f64 / ticks as f64;
        let label: Vec<char> = format!("┤{:.1}", d.span * frac).chars().collect();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let mut at = (frac * f64::from(w - 1)).round() as usize;
        if at + label.len() > s.len() {
            at = s.len().saturating_sub(label.len());
        }
        for (i, c) in label.into_iter().enumerate() {
            if let Some(slot) = s.get_mut(at + i) {
                *slot = c;
            }
        }
    }
    let text: String = s.into_iter().collect();
    let r = Rect {
        x: area.x + STRIP_LABEL,
        width: w,
        ..area
    };
    put(buf, r, 0, &Line::styled(text, t.dim()));
}

/// The legend under the title: what the symbols and colours mean.
fn legend(k: Kind, t: Theme) -> Line<'static> {
    let mut spans = vec![Span::raw(" ")];
    match k {
        Kind::Signin => {
            spans.push(Span::styled("✓ done ", t.ok()));
            spans.push(Span::styled("✗ failed ", t.error()));
            spans.push(Span::styled("? missing ", t.note(2)));
        }
        Kind::Transcript => {
            spans.push(Span::styled("message ", t.cat(super::index::Cat::Message)));
            spans.push(Span::styled("typing ", t.typing()));
            spans.push(Span::styled(
                "✓ receipt ✎ corrected ",
                t.cat(super::index::Cat::Iq),
            ));
        }
        Kind::Timeline => {
            for show in ["available", "away", "xa", "dnd", "unavailable"] {
                let (sym, st) = show_cell(t, Some(show));
                spans.push(Span::styled(format!("{sym} {show} "), st));
            }
            spans.push(Span::styled("▬ typing ", t.typing()));
            spans.push(Span::styled(
                "● message ",
                t.cat(super::index::Cat::Message),
            ));
        }
        Kind::Roster => {
            spans.push(Span::styled(
                "from roster results and pushes, subscription presences",
                t.dim(),
            ));
        }
    }
    Line::from(spans)
}

/// Where a story view puts its lines, below the title and the column
/// header: why the reading stopped early (if it did), the legend (when
/// there is room), then the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Regions {
    pub problem: Option<Rect>,
    pub legend: Option<Rect>,
    pub rows: Rect,
}

#[must_use]
pub fn regions(main: Rect, problem: bool) -> Regions {
    let mut body = layout::list_body(main);
    let mut r = Regions {
        problem: None,
        legend: None,
        rows: body,
    };
    if problem {
        r.problem = Some(pane_line(body, 0));
        body = layout::pane_body(body);
    }
    if body.height >= 6 {
        r.legend = Some(pane_line(body, 0));
        body = layout::pane_body(body);
    }
    r.rows = body;
    r
}

/// The first row drawn, with `sel` selected, `top` asked for, `h` rows of
/// room and `len` rows in all.
#[must_use]
pub fn first_drawn(sel: usize, top: usize, h: usize, len: usize) -> usize {
    let mut top = top.min(sel);
    if sel >= top + h {
        top = sel + 1 - h;
    }
    if len <= h {
        top = 0;
    }
    top
}

/// The full-screen widget of the current story view.
pub struct StoryView<'a> {
    pub app: &'a App,
    pub kind: Kind,
}

impl Widget for &StoryView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.is_empty() {
            return;
        }
        let app = self.app;
        let t = app.theme;
        let st = &app.story;
        let k = self.kind;
        let mut title = k.title().to_owned();
        if let Some(j) = &st.jid {
            title.push_str(&format!(" · {j}"));
        }
        if let Some(r) = &st.result {
            title.push_str(&format!(" · {} frames", r.data.frames));
        }
        if st.computing.is_some() {
            title.push_str(" · computing…");
        }
        title_line(buf, area, &title, true, t);
        if area.height < 2 {
            return;
        }
        let body = layout::list_body(area);
        let rows = st.rows(k);
        let Some(result) = &st.result else {
            let head = pane_line(area, 1);
            put(buf, head, 0, &legend(k, t));
            put(
                buf,
                body,
                0,
                &Line::styled(" computing… (reading the capture again)", t.dim()),
            );
            return;
        };
        let data = &result.data;
        // Header: the legend, or the column names when there is room for both.
        let (names, widths) = columns(k, result.sender_width.min(area.width / 3));
        let head = pane_line(area, 1);
        let header = Row::new(names.iter().enumerate().map(|(ci, n)| {
            if numeric(k, ci) {
                Cell::from(Line::from(*n).right_aligned())
            } else {
                Cell::from(*n)
            }
        }))
        .style(t.header());
        fill(buf, head, 0, t.header());
        Widget::render(
            Table::new(Vec::<Row>::new(), widths.clone()).header(header),
            head,
            buf,
        );
        let reg = regions(area, data.problem.is_some());
        if let (Some(p), Some(r)) = (&data.problem, reg.problem) {
            put(buf, r, 0, &Line::styled(format!(" {p}"), t.note(2)));
        }
        if let Some(r) = reg.legend {
            put(buf, r, 0, &legend(k, t));
        }
        let body = reg.rows;
        let h = usize::from(body.height);
        if h == 0 {
            return;
        }
        let (sel, top) = st.cursor.get(k.index()).copied().unwrap_or_default();
        let top = first_drawn(sel, top, h, rows.len());
        let mut y = 0u16;
        let visible: Vec<(usize, &Item)> = rows.iter().enumerate().skip(top).take(h).collect();
        let mut i = 0;
        while let Some(&(n, it)) = visible.get(i) {
            let line = pane_line(body, y);
            match &it.shape {
                Shape::Cells { .. } => {
                    // A run of table rows: one Table.
                    let mut run = Vec::new();
                    while let Some(&(m, it)) = visible.get(i) {
                        let Shape::Cells { cells, extra } = &it.shape else {
                            break;
                        };
                        let mut style = tone_style(t, it.tone);
                        if m == sel {
                            style = style.patch(t.selected());
                        }
                        let last = cells.len().saturating_sub(1);
                        let cs: Vec<Cell> = cells
                            .iter()
                            .enumerate()
                            .map(|(ci, c)| {
                                if ci == last
                                    && let Some((e, et)) = extra
                                {
                                    Cell::from(Line::from(vec![
                                        Span::raw(c.clone()),
                                        Span::raw("  "),
                                        Span::styled(e.clone(), tone_style(t, *et)),
                                    ]))
                                } else if numeric(k, ci) {
                                    Cell::from(Line::from(c.clone()).right_aligned())
                                } else {
                                    Cell::from(c.clone())
                                }
                            })
                            .collect();
                        run.push(Row::new(cs).style(style));
                        i += 1;
                    }
                    let n_rows = u16::try_from(run.len()).unwrap_or(u16::MAX);
                    let r = Rect {
                        height: n_rows.min(body.height.saturating_sub(y)),
                        ..line
                    };
                    Widget::render(Table::new(run, widths.clone()), r, buf);
                    y = y.saturating_add(n_rows);
                    continue;
                }
                Shape::Head(s) => {
                    let mut style = tone_style(t, it.tone);
                    if n == sel {
                        style = style.patch(t.selected());
                        fill(buf, line, 0, style);
                    }
                    put(buf, line, 0, &Line::styled(s.clone(), style));
                }
                Shape::Strip { contact, typing } => {
                    draw_strip(data, *contact, *typing, line, buf, t);
                    if n == sel {
                        fill(
                            buf,
                            Rect {
                                width: STRIP_LABEL.min(line.width),
                                ..line
                            },
                            0,
                            t.selected(),
                        );
                    }
                }
                Shape::Axis => draw_axis(data, line, buf, t),
                Shape::Blank => {
                    if n == sel {
                        fill(buf, line, 0, t.selected());
                    }
                }
            }
            i += 1;
            y = y.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::app::tests::Harness;
    use crate::ui::app::{AppEvent, Screen};
    use crate::ui::theme::Theme;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::KeyCode;

    fn draw(app: &App, w: u16, h: u16) -> String {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| crate::ui::view::view(app, f)).unwrap();
        let buf = term.backend().buffer();
        let mut s = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                s.push_str(buf[(x, y)].symbol());
            }
            s.push('\n');
        }
        s
    }

    const ACTIONS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/captures/prosody-plain-signin-chat.actions.jsonl"
    );

    /// The recording script's log of what it did.
    fn actions() -> Vec<serde_json::Value> {
        std::fs::read_to_string(ACTIONS)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn of(action: &str) -> Vec<serde_json::Value> {
        actions()
            .into_iter()
            .filter(|a| a["action"] == action)
            .collect()
    }

    fn opened(key: char, w: u16, h: u16) -> Harness {
        let mut hs = Harness::new((w, h));
        hs.key(KeyCode::Char(key));
        hs
    }

    fn no_secret(s: &str) {
        assert!(!s.contains("alice-wonderland-42"), "{s}");
        assert!(!s.contains("AGFsaWNl"), "{s}");
    }

    #[test]
    fn signin_view_reads_right() {
        let signins = of("signin");
        for (w, h) in [(80, 24), (200, 60)] {
            let hs = opened('S', w, h);
            assert_eq!(hs.app.screen, Screen::Story(Kind::Signin));
            let s = draw(&hs.app, w, h);
            assert!(s.contains("Sign-in timeline"), "{s}");
            // Alice signs in first: her flow, bound JID and SASL mechanism.
            let a = &signins[0];
            let jid = a["jid"].as_str().unwrap();
            assert!(
                s.lines()
                    .any(|l| l.starts_with("Flow 0: ") && l.contains(":5222") && l.contains(jid)),
                "{s}"
            );
            let mech = format!("mechanism {}", a["mechanism"].as_str().unwrap());
            assert!(
                s.lines().any(|l| l.contains("SASL") && l.contains(&mech)),
                "{s}"
            );
            assert!(
                s.lines()
                    .any(|l| l.contains("bind") && l.contains(jid) && l.starts_with('✓')),
                "{s}"
            );
            assert!(
                s.lines()
                    .any(|l| l.contains("TCP connect") && l.contains("RTT")),
                "{s}"
            );
            no_secret(&s);
        }
        // Bob's flow further down, at the large size.
        let s = draw(&opened('S', 200, 60).app, 200, 60);
        let jid = signins[1]["jid"].as_str().unwrap();
        assert!(
            s.lines()
                .any(|l| l.starts_with("Flow 1: ") && l.contains(jid)),
            "{s}"
        );
        assert!(
            s.lines()
                .any(|l| l.contains("roster") && l.contains("2 items")),
            "{s}"
        );
        assert!(!s.contains("MISSING"), "a whole sign-in: {s}");
    }

    #[test]
    fn transcript_view_reads_right() {
        let sent = of("send_message");
        for (w, h) in [(80, 24), (200, 60)] {
            let hs = opened('T', w, h);
            let s = draw(&hs.app, w, h);
            assert!(s.contains("Chat transcript"), "{s}");
            assert!(
                s.contains("alice@localhost ↔ bob@localhost (3 messages)"),
                "{s}"
            );
            for m in &sent {
                let from = m["actor"].as_str().unwrap();
                let body = m["body"].as_str().unwrap();
                assert!(
                    s.lines().any(|l| l.contains(from) && l.contains(body)),
                    "{from}: {body} missing at {w}x{h}:\n{s}"
                );
            }
            // Typing shown inline, before the message it announces.
            let typing = s.find("alice is typing…").expect(&s);
            let first = sent[0]["body"].as_str().unwrap();
            assert!(typing < s.find(first).unwrap(), "{s}");
            assert!(s.contains("alice paused"), "{s}");
            assert!(s.contains("bob is typing…"), "{s}");
        }
    }

    #[test]
    fn timeline_view_reads_right() {
        let away = of("presence")
            .into_iter()
            .find(|p| p["show"].is_string())
            .unwrap();
        let show = away["show"].as_str().unwrap();
        let status = away["status"].as_str().unwrap();
        for (w, h) in [(80, 24), (200, 60)] {
            let hs = opened('P', w, h);
            let s = draw(&hs.app, w, h);
            assert!(s.contains("Presence & typing timeline"), "{s}");
            assert!(s.contains("alice@localhost · last: unavailable"), "{s}");
            assert!(
                s.lines().any(|l| l.contains("presence")
                    && l.contains(show)
                    && l.contains(&format!("\"{status}\""))),
                "{show} {status:?} missing at {w}x{h}:\n{s}"
            );
            // The strips: alice's presence row shows her away spell between
            // available ones, her typing row the typing and the message.
            let strip = s.lines().find(|l| l.starts_with(" presence ")).expect(&s);
            let (sym, _) = show_cell(Theme { color: false }, Some(show));
            let avail = strip.find('█').unwrap();
            let aw = strip.find(sym).expect(strip);
            assert!(aw > avail && strip.rfind('█').unwrap() > aw, "{strip}");
            let typing = s.lines().find(|l| l.starts_with(" typing ")).expect(&s);
            assert!(typing.contains('▬') && typing.contains('●'), "{typing}");
        }
        let s = draw(&opened('P', 200, 60).app, 200, 60);
        assert!(s.contains("bob@localhost · last: unavailable"), "{s}");
        assert!(s.contains("typed for 0.30"), "{s}");
        assert!(
            s.contains("after alice@localhost's message: typing 0.30"),
            "{s}"
        );
    }

    #[test]
    fn roster_view_reads_right() {
        let rosters = of("roster");
        for (w, h) in [(80, 24), (200, 60)] {
            let hs = opened('R', w, h);
            let s = draw(&hs.app, w, h);
            for r in &rosters {
                let account = r["actor"].as_str().unwrap();
                let items = r["items"].as_array().unwrap();
                assert!(
                    s.contains(&format!("Roster of {account} ({} contacts)", items.len())),
                    "{s}"
                );
                for it in items {
                    let line = s
                        .lines()
                        .find(|l| l.starts_with(it["jid"].as_str().unwrap()))
                        .expect(&s);
                    assert!(line.contains(it["name"].as_str().unwrap()), "{line}");
                    assert!(
                        line.contains(it["subscription"].as_str().unwrap()),
                        "{line}"
                    );
                    for g in it["groups"].as_array().unwrap() {
                        assert!(line.contains(g.as_str().unwrap()), "{line}");
                    }
                }
            }
        }
    }

    #[test]
    fn tiny_sizes_and_no_color() {
        for k in ['S', 'T', 'P', 'R'] {
            for (w, h) in [(1, 1), (20, 5), (3, 3), (80, 24)] {
                let hs = opened(k, w, h);
                let s = draw(&hs.app, w, h);
                assert_eq!(s.lines().count(), usize::from(h));
                no_secret(&s);
            }
            let mut hs = Harness::with((100, 30), Theme { color: false });
            hs.key(KeyCode::Char(k));
            let mut term = Terminal::new(TestBackend::new(100, 30)).unwrap();
            term.draw(|f| crate::ui::view::view(&hs.app, f)).unwrap();
            let buf = term.backend().buffer();
            for c in buf.content() {
                assert_eq!(c.fg, ratatui::style::Color::Reset);
                assert_eq!(c.bg, ratatui::style::Color::Reset);
            }
        }
        // In colour, a failed step and a presence strip are coloured by meaning.
        let t = Theme { color: true };
        assert_ne!(tone_style(t, Tone::Failed), tone_style(t, Tone::Ok));
        assert_ne!(
            show_cell(t, Some("away")).1,
            show_cell(t, Some("available")).1
        );
    }

    #[test]
    fn keys_move_jump_and_go_back() {
        let mut hs = Harness::new((100, 30));
        let start = hs.app.selected_row();
        hs.key(KeyCode::Char('T'));
        assert_eq!(hs.app.screen, Screen::Story(Kind::Transcript));
        let rows = hs.app.story.rows(Kind::Transcript).len();
        assert!(rows > 5);
        hs.key(KeyCode::Char('G'));
        assert_eq!(hs.app.story.cursor[1].0, rows - 1);
        hs.key(KeyCode::Home);
        assert_eq!(hs.app.story.cursor[1].0, 0);
        hs.key(KeyCode::PageDown);
        assert_eq!(
            hs.app.story.cursor[1].0,
            rows - 1,
            "one page holds them all"
        );
        hs.key(KeyCode::Char('g'));
        // Down to the first message, then Enter: its packet in the table.
        let body = of("send_message")[0]["body"].as_str().unwrap().to_owned();
        while !hs.app.story.rows(Kind::Transcript)[hs.app.story.cursor[1].0]
            .text()
            .contains(&body)
        {
            hs.key(KeyCode::Char('j'));
        }
        hs.key(KeyCode::Enter);
        assert_eq!(hs.app.screen, Screen::Packets);
        assert!(hs.info().contains("MESSAGE"), "{}", hs.info());
        assert!(hs.info().contains("Hi Bob!"), "{}", hs.info());
        assert_ne!(hs.app.selected_row(), start);
        // The cursor stays where it was when the view is opened again.
        hs.key(KeyCode::Char('T'));
        assert!(hs.app.story.cursor[1].0 > 0);
        hs.key(KeyCode::Up);
        hs.key(KeyCode::Char('k'));
        // A heading has no packet: Enter stays and says so.
        hs.key(KeyCode::Char('g'));
        hs.key(KeyCode::Enter);
        assert_eq!(hs.app.screen, Screen::Story(Kind::Transcript));
        assert!(hs.app.status.as_deref().unwrap().contains("no packet"));
        // Other views' keys switch; the view's own key, Esc and q go back.
        hs.key(KeyCode::Char('R'));
        assert_eq!(hs.app.screen, Screen::Story(Kind::Roster));
        hs.key(KeyCode::Char('R'));
        assert_eq!(hs.app.screen, Screen::Packets);
        hs.key(KeyCode::Char('P'));
        hs.key(KeyCode::Esc);
        assert_eq!(hs.app.screen, Screen::Packets);
        hs.key(KeyCode::Char('S'));
        hs.key(KeyCode::Char('q'));
        assert_eq!(hs.app.screen, Screen::Packets);
        assert!(!hs.app.quit);
        hs.key(KeyCode::Char('q'));
        assert!(hs.app.quit);
    }

    #[test]
    fn computed_once_then_again_on_r() {
        let mut hs = Harness::new((100, 30));
        hs.app.update(AppEvent::Key(KeyCode::Char('S').into()));
        // Before the result: "computing…".
        let cmds = hs.app.take_commands();
        assert!(matches!(
            cmds.as_slice(),
            [crate::ui::app::Command::Story { .. }]
        ));
        let s = draw(&hs.app, 100, 30);
        assert!(s.contains("computing…"), "{s}");
        // The result arrives; a stale generation is ignored.
        let data = compute(
            crate::ui::app::tests::PLAIN,
            &Config::default(),
            None,
            None,
            &|| true,
        );
        hs.app
            .update(AppEvent::Story(Box::new(StoryResult::new(0, data.clone()))));
        assert!(hs.app.story.result.is_none());
        let crate::ui::app::Command::Story { generation, .. } = cmds[0].clone() else {
            unreachable!()
        };
        hs.app.update(AppEvent::Story(Box::new(StoryResult::new(
            generation, data,
        ))));
        let s = draw(&hs.app, 100, 30);
        assert!(!s.contains("computing…"), "{s}");
        // Switching views does not read the file again; `r` does.
        hs.key(KeyCode::Char('T'));
        assert!(hs.app.take_commands().is_empty());
        hs.app.update(AppEvent::Key(KeyCode::Char('r').into()));
        assert!(matches!(
            hs.app.take_commands().as_slice(),
            [crate::ui::app::Command::Story { .. }]
        ));
        assert!(draw(&hs.app, 100, 30).contains("computing…"));
    }

    #[test]
    fn wire_text_cannot_drive_the_terminal() {
        let data = StoryData {
            conversations: vec![chat::Conversation {
                a: "a@x".into(),
                b: "b\u{1b}[2J@x".into(),
                entries: vec![chat::Entry::ChatState {
                    t: 1.0,
                    from: "a@x".into(),
                    state: "composing\u{7}".into(),
                    frame: 3,
                }],
                dropped: 0,
            }],
            ..StoryData::default()
        };
        let rows = items(&data, Kind::Transcript);
        assert!(rows[0].text().contains("b [2J@x"), "{:?}", rows[0]);
        assert!(rows.iter().all(|r| !r.text().chars().any(char::is_control)));
        assert_eq!(rows[1].frame, Some(3));
    }

    #[test]
    fn mouse_wheel_and_click() {
        use ratatui::crossterm::event::{KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
        let mut hs = opened('S', 100, 30);
        let mouse = |kind, row| {
            AppEvent::Mouse(MouseEvent {
                kind,
                column: 20,
                row,
                modifiers: KeyModifiers::NONE,
            })
        };
        hs.app.update(mouse(MouseEventKind::ScrollDown, 10));
        assert_eq!(hs.app.story.cursor[0].0, 3);
        // A click selects the row under it: the screen's line says which.
        let s = draw(&hs.app, 100, 30);
        let y = s
            .lines()
            .position(|l| l.contains("mechanism PLAIN"))
            .unwrap();
        hs.app.update(mouse(
            MouseEventKind::Down(MouseButton::Left),
            u16::try_from(y).unwrap(),
        ));
        let (sel, _) = hs.app.story.cursor[0];
        assert!(
            hs.app.story.rows(Kind::Signin)[sel]
                .text()
                .contains("mechanism PLAIN"),
            "{sel}"
        );
        // Enter: that step's packet.
        hs.key(KeyCode::Enter);
        assert_eq!(hs.app.screen, Screen::Packets);
        assert_eq!(hs.info(), "AUTH PLAIN user=alice");
    }

    #[test]
    fn jid_keeps_one_account_and_stdin_is_refused() {
        let data = compute(
            crate::ui::app::tests::PLAIN,
            &Config::default(),
            None,
            Some("bob@localhost"),
            &|| true,
        );
        assert_eq!(data.signin.len(), 1);
        assert_eq!(data.signin[0].jid(), Some("bob@localhost/garden"));
        assert_eq!(data.roster.len(), 1, "{:?}", data.roster);
        let data = compute("-", &Config::default(), None, None, &|| true);
        assert!(data.problem.unwrap().contains("standard input"));
        let mut app = App::new("-", Theme { color: false }, false, (80, 24));
        app.update(AppEvent::Key(KeyCode::Char('S').into()));
        assert!(app.take_commands().is_empty());
        assert!(app.status.as_deref().unwrap().contains("standard input"));
        assert_eq!(app.screen, Screen::Packets);
        // A file cut short: what was read is shown, with why it stopped.
        let bytes = std::fs::read(crate::ui::app::tests::PLAIN).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cut = dir.path().join("cut.pcap");
        std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
        let data = compute(
            cut.to_str().unwrap(),
            &Config::default(),
            None,
            None,
            &|| true,
        );
        assert!(data.problem.unwrap().contains("still being written"));
        assert!(!data.signin.is_empty());
    }
}

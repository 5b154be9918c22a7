//! The TUI's state and everything that changes it: [`App::update`] takes one
//! [`AppEvent`] (a key, the mouse, a resize, or a result from a background
//! thread) and leaves work for those threads in [`App::take_commands`].
//! Nothing here draws or does I/O.

use std::collections::BTreeSet;
use std::sync::Arc;

use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::{Position, Rect};
use regex::{Regex, RegexBuilder};

use super::decode::{Detail, DetailReq, FollowReq, FrameLoc, LOOKAHEAD, SearchHits, Transcript};
use super::filter::{self, Filter};
use super::index::{Index, NONE, Row};
use super::layout::{self, Areas};
use super::loader::{Loaded, Progress};
use super::story::{self, StoryResult, StoryState};
use super::theme::Theme;
use crate::model::Timestamp;

/// Everything the UI thread reacts to, on one channel.
#[derive(Debug)]
pub enum AppEvent {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    Loaded(Box<Loaded>),
    Detail(Arc<Detail>),
    Transcript(Box<Transcript>),
    Search(SearchHits),
    /// The story views' data, read again from the capture.
    Story(Box<StoryResult>),
}

/// Work for the background threads.
#[derive(Debug, Clone)]
pub enum Command {
    Detail(DetailReq),
    Follow(FollowReq),
    Search {
        generation: u64,
        re: Regex,
    },
    /// Ctrl-Z: give the terminal back and stop.
    Suspend,
    /// Compute the story views from the capture file (`jid`: one account).
    Story {
        generation: u64,
        jid: Option<String>,
    },
}

/// The three panes of the packets screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Table = 0,
    Decoded = 1,
    Bytes = 2,
}

impl Pane {
    fn next(self) -> Self {
        match self {
            Self::Table => Self::Decoded,
            Self::Decoded => Self::Bytes,
            Self::Bytes => Self::Table,
        }
    }
    fn prev(self) -> Self {
        self.next().next()
    }
}

/// What fills the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Packets,
    Follow,
    Flows,
    /// A story view: sign-in, transcript, presence timeline, roster.
    Story(story::Kind),
}

/// A line being typed at the bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    None,
    Search(String),
    Filter(String),
}

/// A search and what it found so far.
#[derive(Debug, Clone)]
pub struct Search {
    pub text: String,
    pub re: Regex,
    /// Whether `text` was taken as a regex (false: literal text).
    pub regex: bool,
    pub generation: u64,
    pub hits: BTreeSet<u32>,
    pub done: bool,
    pub scanned: u64,
    /// Jump to the first hit at or after this row when it arrives.
    pub jump_from: Option<u32>,
}

/// The follow-stream screen.
#[derive(Debug, Clone)]
pub struct Follow {
    pub flow: u32,
    /// The row `F` was pressed on.
    pub origin: u32,
    pub transcript: Option<Transcript>,
    pub sel: usize,
    pub top: usize,
}

/// The flows screen's cursor.
#[derive(Debug, Clone, Default)]
pub struct FlowsView {
    pub sel: usize,
    pub top: usize,
}

/// The whole UI state.
#[derive(Debug)]
pub struct App {
    pub path: String,
    pub theme: Theme,
    pub show_secrets: bool,
    /// Source and Destination show names learnt from the capture (`-n`: off).
    pub resolve_names: bool,
    pub index: Index,
    pub progress: Progress,
    /// Rows shown, in order.
    pub view: Vec<u32>,
    pub show_all: bool,
    pub filter: Option<Filter>,
    /// Selected position in `view`, and the first position drawn.
    pub sel: usize,
    pub top: usize,
    pub focus: Pane,
    pub zoom: bool,
    /// Relative heights of the three panes.
    pub weights: [u16; 3],
    pub screen: Screen,
    pub input: Input,
    pub help: bool,
    pub search: Option<Search>,
    pub detail: Option<Arc<Detail>>,
    /// Row whose detail was asked for.
    pub pending: Option<u32>,
    pub decoded_scroll: usize,
    /// The event the decoded pane's cursor is on.
    pub event_cursor: usize,
    /// Events folded to their header line.
    pub collapsed: BTreeSet<usize>,
    pub bytes_scroll: usize,
    pub follow: Option<Follow>,
    pub flows: FlowsView,
    /// The story views (`S`, `T`, `P`, `R`).
    pub story: StoryState,
    /// Terminal size.
    pub size: (u16, u16),
    /// A message for the status line (until the next key).
    pub status: Option<String>,
    pub quit: bool,
    commands: Vec<Command>,
    search_gen: u64,
    story_gen: u64,
}

const MIN_WEIGHT: u16 = 1;
const MAX_WEIGHT: u16 = 12;

impl App {
    #[must_use]
    pub fn new(path: &str, theme: Theme, show_secrets: bool, size: (u16, u16)) -> Self {
        Self {
            path: path.to_owned(),
            theme,
            show_secrets,
            resolve_names: true,
            index: Index::default(),
            progress: Progress::default(),
            view: Vec::new(),
            show_all: false,
            filter: None,
            sel: 0,
            top: 0,
            focus: Pane::Table,
            zoom: false,
            weights: [5, 4, 3],
            screen: Screen::Packets,
            input: Input::None,
            help: false,
            search: None,
            detail: None,
            pending: None,
            decoded_scroll: 0,
            event_cursor: 0,
            collapsed: BTreeSet::new(),
            bytes_scroll: 0,
            follow: None,
            flows: FlowsView::default(),
            story: StoryState::default(),
            size,
            status: None,
            quit: false,
            commands: Vec::new(),
            search_gen: 0,
            story_gen: 0,
        }
    }

    /// Work queued for the background threads since the last call.
    pub fn take_commands(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.commands)
    }

    /// The selected row, if any.
    #[must_use]
    pub fn selected_row(&self) -> Option<u32> {
        self.view.get(self.sel).copied()
    }

    #[must_use]
    pub fn areas(&self) -> Areas {
        layout::areas(self, Rect::new(0, 0, self.size.0, self.size.1))
    }

    /// Rows of packets the table shows at once.
    #[must_use]
    pub fn table_rows(&self) -> usize {
        usize::from(layout::table_body(self.areas().table).height).max(1)
    }

    /// Does row `i` belong in the view?
    fn shown(&self, i: u32, r: &Row) -> bool {
        (self.show_all || r.is_xmpp())
            && self
                .filter
                .as_ref()
                .is_none_or(|f| f.matches(&self.index, i))
    }

    /// Rebuild the view, keeping the selection on the same row or the next
    /// one shown.
    pub fn rebuild_view(&mut self) {
        let keep = self.selected_row();
        let mut view = Vec::new();
        for i in 0..self.index.len() {
            let Ok(i) = u32::try_from(i) else { break };
            if let Some(r) = self.index.row(i)
                && self.shown(i, &r)
            {
                view.push(i);
            }
        }
        self.view = view;
        self.sel = match keep {
            Some(k) => self
                .view
                .partition_point(|r| *r < k)
                .min(self.view.len().saturating_sub(1)),
            None => 0,
        };
        self.top = 0;
        self.selection_changed();
    }

    /// Where a row's time is.
    #[must_use]
    pub fn row_time(&self, r: &Row) -> Timestamp {
        let first = self.index.first_ts.unwrap_or_default();
        let ns = i64::from(first.nanos).saturating_add(r.ts);
        Timestamp {
            secs: first.secs.saturating_add(ns.div_euclid(1_000_000_000)),
            nanos: u32::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0),
        }
    }

    fn loc(&self, row: u32) -> Option<FrameLoc> {
        let r = self.index.row(row)?;
        Some(FrameLoc {
            row,
            offset: r.offset,
            ts: self.row_time(&r),
            len: r.len,
        })
    }

    /// Frames of `row`'s flow up to it, then a few more.
    fn chain_with_lookahead(&self, row: u32) -> Vec<FrameLoc> {
        let mut chain: Vec<FrameLoc> = self
            .index
            .flow_chain(row)
            .iter()
            .filter_map(|(r, _)| self.loc(*r))
            .collect();
        let Some(flow) = self.index.flow_of(row) else {
            return chain;
        };
        let mut extra = 0;
        let end = self.index.len().min(row as usize + 1 + 8192);
        for i in row as usize + 1..end {
            let i = u32::try_from(i).unwrap_or(NONE);
            if self.index.flow_of(i) == Some(flow) {
                if let Some(l) = self.loc(i) {
                    chain.push(l);
                }
                extra += 1;
                if extra >= LOOKAHEAD {
                    break;
                }
            }
        }
        chain
    }

    /// After the selection moved: keep it visible, ask for its details.
    fn selection_changed(&mut self) {
        let h = self.table_rows();
        if self.sel < self.top {
            self.top = self.sel;
        } else if self.sel >= self.top + h {
            self.top = self.sel + 1 - h;
        }
        let Some(row) = self.selected_row() else {
            self.detail = None;
            return;
        };
        if self.detail.as_ref().is_some_and(|d| d.row == row) || self.pending == Some(row) {
            return;
        }
        self.decoded_scroll = 0;
        self.bytes_scroll = 0;
        self.event_cursor = 0;
        self.collapsed.clear();
        let Some(r) = self.index.row(row) else { return };
        let req = if r.flow == NONE {
            DetailReq {
                row,
                flow: None,
                chain: self.loc(row).into_iter().collect(),
            }
        } else {
            DetailReq {
                row,
                flow: Some(r.flow),
                chain: self.chain_with_lookahead(row),
            }
        };
        self.pending = Some(row);
        self.commands.push(Command::Detail(req));
    }

    fn select(&mut self, pos: usize) {
        if self.view.is_empty() {
            self.sel = 0;
            return;
        }
        self.sel = pos.min(self.view.len() - 1);
        self.selection_changed();
    }

    fn move_sel(&mut self, delta: isize) {
        let pos = self.sel.saturating_add_signed(delta);
        self.select(pos);
    }

    /// Select a row (making it visible by clearing what hides it).
    pub fn goto_row(&mut self, row: u32) {
        if self.view.binary_search(&row).is_err() {
            let r = self.index.row(row);
            if self
                .filter
                .as_ref()
                .is_some_and(|f| !f.matches(&self.index, row))
            {
                self.filter = None;
                self.status = Some("filter cleared to show the packet".into());
            }
            if r.is_some_and(|r| !r.is_xmpp()) {
                self.show_all = true;
            }
            self.rebuild_view();
        }
        if let Ok(pos) = self.view.binary_search(&row) {
            self.select(pos);
        }
    }

    /// Handle one event.
    pub fn update(&mut self, ev: AppEvent) {
        match ev {
            AppEvent::Key(k) => {
                if k.kind != KeyEventKind::Release {
                    self.key(k);
                }
            }
            AppEvent::Mouse(m) => self.mouse(m),
            AppEvent::Resize(w, h) => {
                self.size = (w, h);
                self.select(self.sel);
            }
            AppEvent::Loaded(l) => self.loaded(*l),
            AppEvent::Detail(d) => {
                if self.pending == Some(d.row) {
                    self.pending = None;
                }
                if self.selected_row() == Some(d.row) {
                    // Start the bytes pane at the TCP payload when the
                    // frame does not fit.
                    let per = layout::bytes_per_line(self.areas().bytes.width);
                    let lines = d.bytes.as_ref().map_or(0, |b| b.len().div_ceil(per));
                    let h = usize::from(self.areas().bytes.height.saturating_sub(1));
                    self.bytes_scroll = match &d.payload {
                        Some(p) if lines > h && !p.is_empty() => p.start / per,
                        _ => 0,
                    };
                    self.detail = Some(d);
                }
            }
            AppEvent::Transcript(t) => {
                let page = self.page();
                if let Some(f) = self.follow.as_mut().filter(|f| f.flow == t.flow) {
                    f.sel = t.lines.iter().position(|l| l.row >= f.origin).unwrap_or(0);
                    f.top = 0;
                    keep_visible(&mut f.top, f.sel, page);
                    f.transcript = Some(*t);
                }
            }
            AppEvent::Search(h) => self.search_hits(h),
            AppEvent::Story(r) => self.story_result(*r),
        }
    }

    fn loaded(&mut self, l: Loaded) {
        let had_rows = !self.view.is_empty();
        // Live: the table follows the newest packet until the user moves
        // away from the last row (G comes back to it).
        let tail = l.progress.live.is_some() && (!had_rows || self.sel + 1 >= self.view.len());
        let rebuild = !l.batch.row_updates.is_empty()
            || (l.progress.done && self.filter.as_ref().is_some_and(Filter::uses_flows));
        let first = self.index.len();
        let new_names = l.batch.names.is_some();
        self.index.apply(l.batch);
        // `host NAME`: the name may stand for more addresses now.
        let mut rebuild = rebuild;
        if new_names
            && let Some(f) = self.filter.as_ref().filter(|f| f.names)
            && let Ok(Some(again)) = filter::parse_with(&f.text, &self.index.names)
        {
            self.filter = Some(again);
            rebuild = true;
        }
        self.progress = l.progress;
        if rebuild {
            self.rebuild_view();
        } else {
            for i in first..self.index.len() {
                let i = u32::try_from(i).unwrap_or(NONE);
                if let Some(r) = self.index.row(i)
                    && self.shown(i, &r)
                {
                    self.view.push(i);
                }
            }
        }
        if tail && !self.view.is_empty() {
            self.select(self.view.len() - 1);
        } else if !had_rows && !self.view.is_empty() {
            self.select(0);
        }
        // A story view opened while loading: read again once it is done.
        if self.progress.done
            && matches!(self.screen, Screen::Story(_))
            && self.story.computing.is_none()
            && self.story.stale(self.index.len(), true)
        {
            self.request_story();
        }
        if self.progress.done {
            self.index.shrink();
            self.view.shrink_to_fit();
            if let Some(p) = &self.progress.problem {
                self.status = Some(p.clone());
            }
        }
    }

    fn search_hits(&mut self, h: SearchHits) {
        let Some(s) = self
            .search
            .as_mut()
            .filter(|s| s.generation == h.generation)
        else {
            return;
        };
        s.hits.extend(h.rows);
        s.scanned = h.scanned;
        s.done = h.done;
        let Some(from) = s.jump_from else { return };
        let view = &self.view;
        let found = s
            .hits
            .range(from..)
            .find(|r| view.binary_search(r).is_ok())
            .or_else(|| {
                if s.done {
                    s.hits.iter().find(|r| view.binary_search(r).is_ok())
                } else {
                    None
                }
            })
            .copied();
        if let Some(row) = found {
            s.jump_from = None;
            if let Ok(pos) = self.view.binary_search(&row) {
                self.select(pos);
            }
        } else if s.done {
            s.jump_from = None;
            self.status = Some(if s.hits.is_empty() {
                format!("no match for {:?}", s.text)
            } else {
                format!("{} matches, none shown (filter or `a`)", s.hits.len())
            });
        }
    }

    /// Start a search for `text` (a regex, or literal text when it is not one).
    pub fn start_search(&mut self, text: &str) {
        if text.is_empty() {
            self.search = None;
            return;
        }
        let (re, regex) = match RegexBuilder::new(text).case_insensitive(true).build() {
            Ok(re) => (re, true),
            Err(_) => match RegexBuilder::new(&regex::escape(text))
                .case_insensitive(true)
                .build()
            {
                Ok(re) => (re, false),
                Err(e) => {
                    self.status = Some(format!("search: {e}"));
                    return;
                }
            },
        };
        self.search_gen += 1;
        let generation = self.search_gen;
        self.search = Some(Search {
            text: text.to_owned(),
            re: re.clone(),
            regex,
            generation,
            hits: BTreeSet::new(),
            done: false,
            scanned: 0,
            jump_from: Some(self.selected_row().unwrap_or(0)),
        });
        if self.path == "-" {
            // Standard input cannot be read again: the Info column only.
            let hits: Vec<u32> = (0..self.index.len())
                .filter_map(|i| u32::try_from(i).ok())
                .filter(|i| re.is_match(&self.index.info(*i)))
                .collect();
            self.status = Some("standard input: searching the Info column only".into());
            self.search_hits(SearchHits {
                generation,
                rows: hits,
                scanned: self.index.len() as u64,
                done: self.progress.done,
            });
            return;
        }
        self.commands.push(Command::Search { generation, re });
    }

    /// `n` / `N`.
    fn next_hit(&mut self, forward: bool) {
        let Some(s) = &self.search else {
            self.status = Some("no search: press / first".into());
            return;
        };
        let cur = self.selected_row().unwrap_or(0);
        let view = &self.view;
        let visible = |r: &&u32| view.binary_search(r).is_ok();
        let found = if forward {
            s.hits
                .range(cur.saturating_add(1)..)
                .find(visible)
                .or_else(|| s.hits.iter().find(visible))
        } else {
            s.hits
                .range(..cur)
                .rev()
                .find(visible)
                .or_else(|| s.hits.iter().rev().find(visible))
        }
        .copied();
        match found {
            Some(row) => {
                if (forward && row <= cur) || (!forward && row >= cur) {
                    self.status = Some("search wrapped".into());
                }
                if let Ok(pos) = self.view.binary_search(&row) {
                    self.select(pos);
                }
            }
            None => {
                self.status = Some(if s.done {
                    format!("no match for {:?}", s.text)
                } else {
                    "still searching…".into()
                });
            }
        }
    }

    /// Apply the filter bar's text; an error keeps the bar open.
    pub fn apply_filter(&mut self, text: &str) -> Result<(), String> {
        let f = filter::parse_with(text, &self.index.names)?;
        self.filter = f;
        self.rebuild_view();
        Ok(())
    }

    /// `h`: filter to the selected row's host (its flow's client side).
    pub fn host_filter(&mut self) {
        let Some(row) = self.selected_row() else {
            return;
        };
        let Some(r) = self.index.row(row) else { return };
        let host = self
            .index
            .flow(r.flow)
            .map(|f| f.client.0)
            .or_else(|| self.index.addr(r.src));
        let Some(host) = host else {
            self.status = Some("this packet has no address".into());
            return;
        };
        let text = format!("host {host}");
        if self.apply_filter(&text).is_ok() {
            self.status = Some(format!(
                "showing {host}'s flows (both directions); Esc clears"
            ));
        }
    }

    /// `F`: follow the selected row's flow.
    pub fn start_follow(&mut self) {
        let Some(row) = self.selected_row() else {
            return;
        };
        let Some(r) = self.index.row(row) else { return };
        let Some(f) = self.index.flow(r.flow) else {
            self.status = Some("not a TCP flow".into());
            return;
        };
        let chain = self
            .index
            .flow_chain(f.last_row)
            .iter()
            .filter_map(|(i, _)| self.loc(*i))
            .collect();
        self.follow = Some(Follow {
            flow: f.id,
            origin: row,
            transcript: None,
            sel: 0,
            top: 0,
        });
        self.commands
            .push(Command::Follow(FollowReq { flow: f.id, chain }));
        self.screen = Screen::Follow;
    }

    /// `c`: the flows screen, on the selected row's flow.
    pub fn open_flows(&mut self) {
        let flow = self
            .selected_row()
            .and_then(|r| self.index.row(r))
            .map(|r| r.flow);
        if let Some(pos) = flow.and_then(|f| self.index.flows().position(|x| x.id == f)) {
            self.flows.sel = pos;
        }
        self.screen = Screen::Flows;
    }

    fn page(&self) -> usize {
        match self.screen {
            Screen::Packets => match self.focus {
                Pane::Table => self.table_rows(),
                Pane::Decoded => usize::from(self.areas().decoded.height.saturating_sub(1)).max(1),
                Pane::Bytes => usize::from(self.areas().bytes.height.saturating_sub(1)).max(1),
            },
            _ => usize::from(self.areas().main.height.saturating_sub(2)).max(1),
        }
    }

    fn key(&mut self, k: KeyEvent) {
        // No Alt bindings: Alt-x is a terminal's way of saying Esc then x
        // when the two arrive together.
        if k.modifiers.contains(KeyModifiers::ALT)
            && let KeyCode::Char(c) = k.code
        {
            self.key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
            self.key(KeyEvent::new(
                KeyCode::Char(c),
                k.modifiers - KeyModifiers::ALT,
            ));
            return;
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(k.code, KeyCode::Char('c')) {
            self.quit = true;
            return;
        }
        if self.input != Input::None {
            self.input_key(k);
            return;
        }
        self.status = None;
        if self.help {
            match k.code {
                KeyCode::Char('q') => self.quit = true,
                _ => self.help = false,
            }
            return;
        }
        match (k.code, ctrl) {
            // In a story view `q` goes back to the table.
            (KeyCode::Char('q'), false) if !matches!(self.screen, Screen::Story(_)) => {
                self.quit = true;
                return;
            }
            (KeyCode::Char('?'), _) => {
                self.help = true;
                return;
            }
            (KeyCode::Char('z'), true) => {
                self.commands.push(Command::Suspend);
                return;
            }
            (KeyCode::Char('/'), false) => {
                self.input = Input::Search(String::new());
                return;
            }
            (KeyCode::Char('f' | ':'), false) => {
                let cur = self
                    .filter
                    .as_ref()
                    .map(|f| f.text.clone())
                    .unwrap_or_default();
                self.input = Input::Filter(cur);
                return;
            }
            _ => {}
        }
        match self.screen {
            Screen::Packets => self.packets_key(k, ctrl),
            Screen::Follow => self.follow_key(k, ctrl),
            Screen::Flows => self.flows_key(k, ctrl),
            Screen::Story(kind) => self.story_key(kind, k, ctrl),
        }
    }

    /// Motion keys as a new position in a list of `len` items.
    fn motion(&self, k: KeyEvent, ctrl: bool, cur: usize, len: usize) -> Option<usize> {
        let page = self.page();
        let last = len.saturating_sub(1);
        Some(match (k.code, ctrl) {
            (KeyCode::Up | KeyCode::Char('k'), false) => cur.saturating_sub(1),
            (KeyCode::Down | KeyCode::Char('j'), false) => (cur + 1).min(last),
            (KeyCode::PageUp, _) | (KeyCode::Char('b'), true) => cur.saturating_sub(page),
            (KeyCode::PageDown, _) | (KeyCode::Char('f'), true) => (cur + page).min(last),
            (KeyCode::Char('u'), true) => cur.saturating_sub(page / 2),
            (KeyCode::Char('d'), true) => (cur + page / 2).min(last),
            (KeyCode::Home | KeyCode::Char('g'), false) => 0,
            (KeyCode::End | KeyCode::Char('G'), false) => last,
            _ => return None,
        })
    }

    fn packets_key(&mut self, k: KeyEvent, ctrl: bool) {
        match (k.code, ctrl) {
            // Pane sizes change: keep the table's scrolling in step.
            (KeyCode::Tab, _) => {
                self.focus = self.focus.next();
                self.select(self.sel);
            }
            (KeyCode::BackTab, _) => {
                self.focus = self.focus.prev();
                self.select(self.sel);
            }
            (KeyCode::Char('z'), false) => {
                self.zoom = !self.zoom;
                self.select(self.sel);
            }
            (KeyCode::Char('+' | '='), false) => {
                let w = &mut self.weights[self.focus as usize];
                *w = (*w + 1).min(MAX_WEIGHT);
                self.select(self.sel);
            }
            (KeyCode::Char('-' | '_'), false) => {
                let w = &mut self.weights[self.focus as usize];
                *w = w.saturating_sub(1).max(MIN_WEIGHT);
                self.select(self.sel);
            }
            (KeyCode::Char('n'), false) => self.next_hit(true),
            (KeyCode::Char('N'), false) => self.next_hit(false),
            (KeyCode::Char('h'), false) => self.host_filter(),
            (KeyCode::Char('a'), false) => {
                self.show_all = !self.show_all;
                self.rebuild_view();
                self.status = Some(if self.show_all {
                    "all packets".into()
                } else {
                    "packets with XMPP or TLS only".into()
                });
            }
            (KeyCode::Char('F'), false) => self.start_follow(),
            (KeyCode::Char('c'), false) => self.open_flows(),
            (KeyCode::Char(c @ ('S' | 'T' | 'P' | 'R')), false) => {
                if let Some(kind) = story::Kind::from_key(c) {
                    self.open_story(kind);
                }
            }
            (KeyCode::Esc, _) => {
                let had = self.filter.is_some() || self.search.is_some() || self.zoom;
                self.search = None;
                self.zoom = false;
                if self.filter.take().is_some() {
                    self.rebuild_view();
                } else {
                    self.select(self.sel);
                }
                if had {
                    self.status = Some("filter and search cleared".into());
                }
            }
            (KeyCode::Enter, _) => match self.focus {
                Pane::Table => {
                    self.focus = Pane::Decoded;
                    self.select(self.sel);
                }
                Pane::Decoded => {
                    let c = self.event_cursor;
                    if !self.collapsed.remove(&c) {
                        self.collapsed.insert(c);
                    }
                }
                Pane::Bytes => {}
            },
            _ => match self.focus {
                Pane::Table => {
                    if let Some(pos) = self.motion(k, ctrl, self.sel, self.view.len()) {
                        self.select(pos);
                    }
                }
                Pane::Decoded => self.decoded_key(k, ctrl),
                Pane::Bytes => {
                    let lines = self.bytes_lines();
                    if let Some(pos) = self.motion(k, ctrl, self.bytes_scroll, lines) {
                        self.bytes_scroll = pos;
                    }
                }
            },
        }
    }

    fn decoded_key(&mut self, k: KeyEvent, ctrl: bool) {
        let events = self.detail.as_ref().map_or(0, |d| d.events.len());
        match (k.code, ctrl) {
            (KeyCode::Up | KeyCode::Char('k'), false) if events > 0 => {
                self.event_cursor = self.event_cursor.saturating_sub(1);
                self.scroll_to_cursor();
            }
            (KeyCode::Down | KeyCode::Char('j'), false) if events > 0 => {
                self.event_cursor = (self.event_cursor + 1).min(events - 1);
                self.scroll_to_cursor();
            }
            _ => {
                let lines = layout::decoded_line_count(self);
                if let Some(pos) = self.motion(k, ctrl, self.decoded_scroll, lines) {
                    self.decoded_scroll = pos;
                }
            }
        }
    }

    fn scroll_to_cursor(&mut self) {
        if let Some(at) = layout::event_header_line(self, self.event_cursor) {
            let h = usize::from(self.areas().decoded.height.saturating_sub(1)).max(1);
            if at < self.decoded_scroll || at >= self.decoded_scroll + h {
                self.decoded_scroll = at;
            }
        }
    }

    /// Lines of the hex dump.
    fn bytes_lines(&self) -> usize {
        let n = self
            .detail
            .as_ref()
            .and_then(|d| d.bytes.as_ref().ok())
            .map_or(0, Vec::len);
        let per = layout::bytes_per_line(self.areas().bytes.width);
        n.div_ceil(per)
    }

    fn follow_key(&mut self, k: KeyEvent, ctrl: bool) {
        let len = self
            .follow
            .as_ref()
            .and_then(|f| f.transcript.as_ref())
            .map_or(0, |t| t.lines.len());
        match k.code {
            KeyCode::Esc | KeyCode::Char('F') => self.screen = Screen::Packets,
            KeyCode::Char('c') => self.open_flows(),
            KeyCode::Enter => {
                let row = self
                    .follow
                    .as_ref()
                    .and_then(|f| f.transcript.as_ref().and_then(|t| t.lines.get(f.sel)))
                    .map(|l| l.row);
                self.screen = Screen::Packets;
                if let Some(row) = row {
                    self.goto_row(row);
                }
            }
            _ => {
                let cur = self.follow.as_ref().map_or(0, |f| f.sel);
                if let Some(pos) = self.motion(k, ctrl, cur, len) {
                    let page = self.page();
                    if let Some(f) = self.follow.as_mut() {
                        f.sel = pos;
                        keep_visible(&mut f.top, f.sel, page);
                    }
                }
            }
        }
    }

    fn flows_key(&mut self, k: KeyEvent, ctrl: bool) {
        let len = self.index.flow_count();
        match k.code {
            KeyCode::Esc | KeyCode::Char('c') => self.screen = Screen::Packets,
            KeyCode::Enter => {
                let id = self.index.flows().nth(self.flows.sel).map(|f| f.id);
                self.screen = Screen::Packets;
                if let Some(id) = id
                    && self.apply_filter(&format!("flow {id}")).is_ok()
                {
                    self.status = Some(format!("flow {id}; Esc clears"));
                }
            }
            KeyCode::Char('F') => {
                let row = self.index.flows().nth(self.flows.sel).map(|f| f.first_row);
                if let Some(row) = row {
                    self.screen = Screen::Packets;
                    self.show_all = true;
                    self.rebuild_view();
                    self.goto_row(row);
                    self.start_follow();
                }
            }
            _ => {
                if let Some(pos) = self.motion(k, ctrl, self.flows.sel, len) {
                    let page = self.page();
                    self.flows.sel = pos;
                    keep_visible(&mut self.flows.top, pos, page);
                }
            }
        }
    }

    fn input_key(&mut self, k: KeyEvent) {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        let buf = match &mut self.input {
            Input::Search(s) | Input::Filter(s) => s,
            Input::None => return,
        };
        match k.code {
            KeyCode::Esc => self.input = Input::None,
            KeyCode::Backspace => {
                buf.pop();
            }
            KeyCode::Char('u') if ctrl => buf.clear(),
            KeyCode::Char('w') if ctrl => {
                let t = buf.trim_end().len();
                buf.truncate(t);
                let cut = buf.rfind(char::is_whitespace).map_or(0, |i| i + 1);
                buf.truncate(cut);
            }
            KeyCode::Char(c) if !ctrl => buf.push(c),
            KeyCode::Enter => {
                let input = std::mem::replace(&mut self.input, Input::None);
                match input {
                    Input::Search(s) => {
                        self.screen = Screen::Packets;
                        self.start_search(&s);
                    }
                    Input::Filter(s) => {
                        self.screen = Screen::Packets;
                        if let Err(e) = self.apply_filter(&s) {
                            self.status = Some(format!("filter: {e}"));
                            self.input = Input::Filter(s);
                        }
                    }
                    Input::None => {}
                }
            }
            _ => {}
        }
    }

    fn mouse(&mut self, m: MouseEvent) {
        let a = self.areas();
        let at = Position::new(m.column, m.row);
        let down = match m.kind {
            MouseEventKind::ScrollDown => Some(true),
            MouseEventKind::ScrollUp => Some(false),
            _ => None,
        };
        if self.help || self.input != Input::None {
            return;
        }
        match self.screen {
            Screen::Packets => {
                let pane = [
                    (Pane::Table, a.table),
                    (Pane::Decoded, a.decoded),
                    (Pane::Bytes, a.bytes),
                ]
                .into_iter()
                .find(|(_, r)| r.contains(at))
                .map(|(p, _)| p);
                let Some(pane) = pane else { return };
                if let Some(down) = down {
                    let d: isize = if down { 3 } else { -3 };
                    match pane {
                        Pane::Table => self.move_sel(d),
                        Pane::Decoded => {
                            let n = layout::decoded_line_count(self);
                            self.decoded_scroll = self
                                .decoded_scroll
                                .saturating_add_signed(d)
                                .min(n.saturating_sub(1));
                        }
                        Pane::Bytes => {
                            let n = self.bytes_lines();
                            self.bytes_scroll = self
                                .bytes_scroll
                                .saturating_add_signed(d)
                                .min(n.saturating_sub(1));
                        }
                    }
                } else if let MouseEventKind::Down(MouseButton::Left) = m.kind {
                    self.focus = pane;
                    if pane == Pane::Table {
                        let body = layout::table_body(a.table);
                        if body.contains(at) {
                            let pos = self.top + usize::from(m.row - body.y);
                            if pos < self.view.len() {
                                self.select(pos);
                            }
                        }
                    }
                }
            }
            Screen::Story(kind) => {
                let body = self.story_rows_area();
                let page = usize::from(body.height).max(1);
                let len = self.story.rows(kind).len();
                let Some((sel, top)) = self.story.cursor.get_mut(kind.index()) else {
                    return;
                };
                let first = story::first_drawn(*sel, *top, page, len);
                let hit = clicked_row(&m, body, at).map(|r| first + r);
                list_mouse(sel, top, len, page, down, hit);
            }
            Screen::Follow | Screen::Flows => {
                let body = layout::list_body(a.main);
                let page = usize::from(body.height).max(1);
                let (sel, top, len) = match self.screen {
                    Screen::Follow => {
                        let Some(f) = self.follow.as_mut() else {
                            return;
                        };
                        let len = f.transcript.as_ref().map_or(0, |t| t.lines.len());
                        (&mut f.sel, &mut f.top, len)
                    }
                    _ => {
                        let len = self.index.flow_count();
                        (&mut self.flows.sel, &mut self.flows.top, len)
                    }
                };
                let hit = clicked_row(&m, body, at).map(|r| *top + r);
                list_mouse(sel, top, len, page, down, hit);
            }
        }
    }
}

/// The row of `body` a left click hit, counted from its top.
fn clicked_row(m: &MouseEvent, body: Rect, at: Position) -> Option<usize> {
    (matches!(m.kind, MouseEventKind::Down(MouseButton::Left)) && body.contains(at))
        .then(|| usize::from(m.row.saturating_sub(body.y)))
}

/// The mouse on a full-screen list of `len` rows: the wheel moves the
/// selection three rows (`down`), a click selects the row it hit.
fn list_mouse(
    sel: &mut usize,
    top: &mut usize,
    len: usize,
    page: usize,
    down: Option<bool>,
    clicked: Option<usize>,
) {
    if len == 0 {
        return;
    }
    if let Some(down) = down {
        *sel = if down {
            (*sel + 3).min(len - 1)
        } else {
            sel.saturating_sub(3)
        };
        keep_visible(top, *sel, page);
    } else if let Some(pos) = clicked.filter(|p| *p < len) {
        *sel = pos;
    }
}

impl App {
    /// `S` `T` `P` `R`: open a story view, reading the capture again when
    /// what is shown is older than what is loaded.
    pub fn open_story(&mut self, kind: story::Kind) {
        if self.path == "-" {
            self.status = Some(
                "standard input cannot be read again: the story views need a capture file (-r FILE)"
                    .into(),
            );
            return;
        }
        self.screen = Screen::Story(kind);
        if self.story.computing.is_none() && self.story.stale(self.index.len(), self.progress.done)
        {
            self.request_story();
        }
    }

    /// Ask the background for the story views (again).
    pub fn request_story(&mut self) {
        if self.path == "-" {
            self.status = Some(
                "standard input cannot be read again: the story views need a capture file (-r FILE)"
                    .into(),
            );
            return;
        }
        self.story_gen += 1;
        self.story.computing = Some(self.story_gen);
        self.story.pending_at = (self.index.len(), self.progress.done);
        self.commands.push(Command::Story {
            generation: self.story_gen,
            jid: self.story.jid.clone(),
        });
    }

    fn story_result(&mut self, r: StoryResult) {
        if self.story.computing != Some(r.generation) {
            return;
        }
        self.story.computing = None;
        self.story.asked_at = self.story.pending_at;
        // Keep each view's cursor where it was, within the new rows.
        for k in story::Kind::ALL {
            let len = r.items.get(k.index()).map_or(0, Vec::len);
            if let Some((sel, top)) = self.story.cursor.get_mut(k.index()) {
                *sel = (*sel).min(len.saturating_sub(1));
                *top = (*top).min(*sel);
            }
        }
        self.story.result = Some(r);
    }

    fn story_key(&mut self, kind: story::Kind, k: KeyEvent, ctrl: bool) {
        let len = self.story.rows(kind).len();
        match (k.code, ctrl) {
            (KeyCode::Esc | KeyCode::Char('q'), _) => self.screen = Screen::Packets,
            (KeyCode::Char(c @ ('S' | 'T' | 'P' | 'R')), false) => match story::Kind::from_key(c) {
                Some(other) if other != kind => self.open_story(other),
                _ => self.screen = Screen::Packets,
            },
            (KeyCode::Char('r'), false) => {
                self.request_story();
                self.status = Some("reading the capture again…".into());
            }
            (KeyCode::Enter, _) => {
                let (sel, _) = self
                    .story
                    .cursor
                    .get(kind.index())
                    .copied()
                    .unwrap_or_default();
                let frame = self.story.rows(kind).get(sel).and_then(|it| it.frame);
                match frame.and_then(|f| u32::try_from(f.saturating_sub(1)).ok()) {
                    Some(row) if self.index.row(row).is_some() => {
                        self.screen = Screen::Packets;
                        self.goto_row(row);
                    }
                    Some(_) => {
                        self.status = Some("that packet is not loaded yet".into());
                    }
                    None => self.status = Some("no packet for this row".into()),
                }
            }
            _ => {
                let (cur, _) = self
                    .story
                    .cursor
                    .get(kind.index())
                    .copied()
                    .unwrap_or_default();
                if let Some(pos) = self.motion(k, ctrl, cur, len) {
                    let page = self.story_page();
                    if let Some((sel, top)) = self.story.cursor.get_mut(kind.index()) {
                        *sel = pos;
                        keep_visible(top, pos, page);
                    }
                }
            }
        }
    }

    /// Rows a story view shows at once (as its widget lays them out).
    fn story_page(&self) -> usize {
        usize::from(self.story_rows_area().height).max(1)
    }

    fn story_rows_area(&self) -> Rect {
        let problem = self
            .story
            .result
            .as_ref()
            .is_some_and(|r| r.data.problem.is_some());
        story::regions(self.areas().main, problem).rows
    }
}

/// Scroll `top` so that `sel` is within `page` lines of it.
pub fn keep_visible(top: &mut usize, sel: usize, page: usize) {
    let page = page.max(1);
    if sel < *top {
        *top = sel;
    } else if sel >= *top + page {
        *top = sel + 1 - page;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dissect::Config;
    use crate::ui::decode::{self, Decoder};
    use crate::ui::loader;
    use std::sync::atomic::AtomicBool;

    pub const PLAIN: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/captures/prosody-plain-signin-chat.pcap"
    );

    /// An app with the plain capture loaded, background work done in line.
    pub struct Harness {
        pub app: App,
        dec: Decoder,
        path: &'static str,
        cfg: Config,
    }

    impl Harness {
        pub fn new(size: (u16, u16)) -> Self {
            Self::with(size, Theme { color: true })
        }

        pub fn with(size: (u16, u16), theme: Theme) -> Self {
            Self::open(PLAIN, size, theme)
        }

        pub fn open(path: &'static str, size: (u16, u16), theme: Theme) -> Self {
            Self::open_with(path, size, theme, Config::default())
        }

        pub fn open_with(path: &'static str, size: (u16, u16), theme: Theme, cfg: Config) -> Self {
            let mut app = App::new(path, theme, cfg.show_secrets, size);
            let mut batches = Vec::new();
            loader::load(
                path,
                &cfg,
                None,
                &Arc::new(AtomicBool::new(false)),
                &mut |l| {
                    batches.push(l);
                    true
                },
            );
            for b in batches {
                app.update(AppEvent::Loaded(Box::new(b)));
            }
            let mut h = Self {
                app,
                dec: Decoder::new(path, 1, &cfg),
                path,
                cfg,
            };
            h.settle();
            h
        }

        /// Run queued background work until there is none.
        pub fn settle(&mut self) {
            loop {
                let cmds = self.app.take_commands();
                if cmds.is_empty() {
                    return;
                }
                for c in cmds {
                    match c {
                        Command::Detail(r) => {
                            let d = self.dec.detail(&r);
                            self.app.update(AppEvent::Detail(d));
                        }
                        Command::Follow(r) => {
                            let t = self.dec.follow(&r);
                            self.app.update(AppEvent::Transcript(Box::new(t)));
                        }
                        Command::Search { generation, re } => {
                            let mut all = Vec::new();
                            decode::search(self.path, &self.cfg, None, &re, generation, &mut |h| {
                                all.push(h);
                                true
                            });
                            for h in all {
                                self.app.update(AppEvent::Search(h));
                            }
                        }
                        Command::Suspend => {}
                        Command::Story { generation, jid } => {
                            let data =
                                story::compute(self.path, &self.cfg, None, jid.as_deref(), &|| {
                                    true
                                });
                            self.app.update(AppEvent::Story(Box::new(StoryResult::new(
                                generation, data,
                            ))));
                        }
                    }
                }
            }
        }

        pub fn key(&mut self, code: KeyCode) {
            self.key_mod(code, KeyModifiers::NONE);
        }

        pub fn key_mod(&mut self, code: KeyCode, m: KeyModifiers) {
            self.app.update(AppEvent::Key(KeyEvent::new(code, m)));
            self.settle();
        }

        pub fn typ(&mut self, s: &str) {
            for c in s.chars() {
                self.key(KeyCode::Char(c));
            }
        }

        pub fn info(&self) -> String {
            self.app
                .selected_row()
                .map(|r| self.app.index.info(r))
                .unwrap_or_default()
        }
    }

    #[test]
    fn starts_on_the_first_xmpp_packet() {
        let h = Harness::new((100, 30));
        assert_eq!(h.app.selected_row(), Some(3));
        assert_eq!(h.info(), "STREAM > localhost");
        assert!(h.app.progress.done);
        let d = h.app.detail.as_ref().unwrap();
        assert_eq!(d.row, 3);
        // Only XMPP rows by default; `a` shows all.
        let xmpp = h.app.view.len();
        assert!(xmpp > 40 && xmpp < h.app.index.len());
        let mut h = h;
        h.key(KeyCode::Char('a'));
        assert_eq!(h.app.view.len(), h.app.index.len());
        assert_eq!(h.app.selected_row(), Some(3), "selection kept");
        h.key(KeyCode::Char('a'));
        assert_eq!(h.app.view.len(), xmpp);
    }

    /// Live: rows arriving one by one keep the newest selected, until the
    /// user moves up; `G` goes back to following.
    #[test]
    fn live_table_follows_the_tail_until_the_user_moves_away() {
        let mut batches = Vec::new();
        loader::load_batched(
            PLAIN,
            &Config::default(),
            None,
            &Arc::new(AtomicBool::new(false)),
            [1, 1],
            &mut |l| {
                batches.push(l);
                true
            },
        );
        assert!(batches.len() > 50, "{}", batches.len());
        let live = crate::ui::loader::LiveStatus {
            interfaces: vec!["lo".into()],
            running: true,
            ..Default::default()
        };
        let mut app = App::new(PLAIN, Theme { color: true }, false, (100, 30));
        let mut batches = batches.into_iter().map(|mut b| {
            b.progress.live = Some(live.clone());
            b.progress.done = false;
            b
        });
        for b in batches.by_ref().take(30) {
            app.update(AppEvent::Loaded(Box::new(b)));
            if !app.view.is_empty() {
                assert_eq!(app.sel, app.view.len() - 1, "follows the newest row");
            }
        }
        assert!(app.view.len() > 3, "{}", app.view.len());
        app.update(AppEvent::Key(KeyEvent::new(
            KeyCode::Up,
            KeyModifiers::NONE,
        )));
        let held = app.selected_row();
        for b in batches.by_ref().take(20) {
            app.update(AppEvent::Loaded(Box::new(b)));
        }
        assert_eq!(app.selected_row(), held, "moved away: the selection stays");
        assert!(app.sel + 1 < app.view.len());
        app.update(AppEvent::Key(KeyEvent::new(
            KeyCode::Char('G'),
            KeyModifiers::NONE,
        )));
        for b in batches {
            app.update(AppEvent::Loaded(Box::new(b)));
        }
        assert_eq!(app.sel, app.view.len() - 1, "G follows again");
        assert_eq!(app.index.info(app.selected_row().unwrap()), "STREAM END");
        // A file (no live status) starts at the top instead.
        let h = Harness::new((100, 30));
        assert_eq!(h.app.sel, 0);
    }

    #[test]
    fn motions() {
        let mut h = Harness::new((100, 30));
        h.key(KeyCode::Down);
        assert_eq!(h.info(), "STREAM < localhost, FEATURES");
        h.key(KeyCode::Char('j'));
        assert_eq!(h.info(), "AUTH PLAIN user=alice");
        h.key(KeyCode::Char('k'));
        h.key(KeyCode::Up);
        assert_eq!(h.app.sel, 0);
        h.key(KeyCode::Char('G'));
        assert_eq!(h.app.sel, h.app.view.len() - 1);
        assert_eq!(h.info(), "STREAM END");
        assert!(h.app.top > 0, "scrolled");
        h.key(KeyCode::Char('g'));
        assert_eq!((h.app.sel, h.app.top), (0, 0));
        h.key(KeyCode::End);
        h.key(KeyCode::Home);
        assert_eq!(h.app.sel, 0);
        h.key_mod(KeyCode::Char('d'), KeyModifiers::CONTROL);
        let half = h.app.sel;
        assert!(half > 3);
        h.key(KeyCode::PageDown);
        assert!(h.app.sel > half);
        h.key(KeyCode::PageUp);
        assert_eq!(h.app.sel, half);
        h.key_mod(KeyCode::Char('u'), KeyModifiers::CONTROL);
        assert_eq!(h.app.sel, 0);
        // Details follow the selection.
        h.key(KeyCode::Down);
        h.key(KeyCode::Down);
        let d = h.app.detail.as_ref().unwrap();
        assert_eq!(d.row, 7);
        assert!(d.events[0].xml.contains("[masked"));
    }

    #[test]
    fn panes_zoom_and_resize() {
        let mut h = Harness::new((100, 40));
        assert_eq!(h.app.focus, Pane::Table);
        h.key(KeyCode::Tab);
        assert_eq!(h.app.focus, Pane::Decoded);
        h.key(KeyCode::Tab);
        assert_eq!(h.app.focus, Pane::Bytes);
        h.key(KeyCode::BackTab);
        assert_eq!(h.app.focus, Pane::Decoded);
        let before = h.app.areas().decoded.height;
        h.key(KeyCode::Char('+'));
        h.key(KeyCode::Char('+'));
        assert!(h.app.areas().decoded.height > before);
        h.key(KeyCode::Char('-'));
        h.key(KeyCode::Char('-'));
        h.key(KeyCode::Char('-'));
        assert!(h.app.areas().decoded.height < before);
        h.key(KeyCode::Char('z'));
        assert!(h.app.zoom);
        assert_eq!(h.app.areas().table.height, 0);
        assert_eq!(h.app.areas().decoded.height, 38);
        h.key(KeyCode::Esc);
        assert!(!h.app.zoom);
        h.app.update(AppEvent::Resize(30, 6));
        assert_eq!(h.app.size, (30, 6));
    }

    #[test]
    fn search_and_next() {
        let mut h = Harness::new((100, 30));
        h.key(KeyCode::Char('/'));
        assert_eq!(h.app.input, Input::Search(String::new()));
        h.typ("composing");
        h.key(KeyCode::Enter);
        assert_eq!(h.app.input, Input::None);
        let s = h.app.search.as_ref().unwrap();
        assert!(s.done);
        assert!(s.regex);
        assert!(h.info().contains("[composing]"), "{}", h.info());
        let first = h.app.selected_row().unwrap();
        h.key(KeyCode::Char('n'));
        let second = h.app.selected_row().unwrap();
        assert!(second > first);
        assert!(h.info().contains("[composing]"));
        h.key(KeyCode::Char('N'));
        assert_eq!(h.app.selected_row(), Some(first));
        // XML-only text: the roster group is only in the XML.
        h.key(KeyCode::Char('g'));
        h.key(KeyCode::Char('/'));
        h.typ("friends");
        h.key(KeyCode::Enter);
        assert!(h.info().contains("jabber:iq:roster"), "{}", h.info());
        // Not a regex: taken literally.
        h.key(KeyCode::Char('/'));
        h.typ("IQ(get");
        h.key(KeyCode::Enter);
        let s = h.app.search.as_ref().unwrap();
        assert!(!s.regex);
        assert!(h.info().starts_with("IQ(get)"));
        // Secrets are not searchable.
        h.key(KeyCode::Char('/'));
        h.typ("wonderland");
        h.key(KeyCode::Enter);
        assert!(h.app.search.as_ref().unwrap().hits.is_empty());
        assert!(h.app.status.as_deref().unwrap_or("").contains("no match"));
        h.key(KeyCode::Esc);
        assert!(h.app.search.is_none());
    }

    #[test]
    fn filter_bar() {
        let mut h = Harness::new((100, 30));
        let all = h.app.view.len();
        h.key(KeyCode::Char('f'));
        h.typ("kind message type chat");
        h.key(KeyCode::Enter);
        assert_eq!(h.app.input, Input::None);
        assert!(h.app.view.len() < all);
        for r in &h.app.view {
            assert!(
                h.app.index.info(*r).starts_with("MESSAGE"),
                "{}",
                h.app.index.info(*r)
            );
        }
        // An invalid filter keeps the bar open with the error.
        h.key(KeyCode::Char(':'));
        assert_eq!(h.app.input, Input::Filter("kind message type chat".into()));
        h.key_mod(KeyCode::Char('u'), KeyModifiers::CONTROL);
        h.typ("host nowhere");
        h.key(KeyCode::Enter);
        assert!(matches!(h.app.input, Input::Filter(_)));
        assert!(
            h.app
                .status
                .as_deref()
                .unwrap()
                .contains("not an IP address")
        );
        h.key(KeyCode::Esc);
        assert_eq!(h.app.input, Input::None);
        // Free text and jid.
        h.key(KeyCode::Char('f'));
        h.key_mod(KeyCode::Char('u'), KeyModifiers::CONTROL);
        h.typ("presence jid bob@localhost");
        h.key(KeyCode::Enter);
        assert!(!h.app.view.is_empty());
        for r in &h.app.view {
            assert!(h.app.index.info(*r).contains("PRESENCE"));
        }
        h.key(KeyCode::Esc);
        assert_eq!(h.app.view.len(), all);
    }

    #[test]
    fn host_filter_takes_names_from_the_capture() {
        let mut h = Harness::new((100, 30));
        let all = h.app.view.len();
        // The stream header's `to` names the server: localhost.
        h.key(KeyCode::Char('f'));
        h.typ("host localhost");
        h.key(KeyCode::Enter);
        assert_eq!(h.app.input, Input::None);
        assert_eq!(h.app.view.len(), all);
        h.key(KeyCode::Char('f'));
        h.key_mod(KeyCode::Char('u'), KeyModifiers::CONTROL);
        h.typ("host nowhere.example");
        h.key(KeyCode::Enter);
        assert!(matches!(h.app.input, Input::Filter(_)));
        let st = h.app.status.clone().unwrap();
        assert!(st.contains("known: localhost"), "{st}");
        h.key(KeyCode::Esc);
        h.key(KeyCode::Char('f'));
        h.key_mod(KeyCode::Char('u'), KeyModifiers::CONTROL);
        h.typ("not host localhost");
        h.key(KeyCode::Enter);
        assert!(h.app.view.is_empty());
    }

    #[test]
    fn host_filter_and_flows() {
        let mut h = Harness::new((100, 30));
        let all = h.app.view.len();
        h.key(KeyCode::Char('h'));
        assert_eq!(h.app.filter.as_ref().unwrap().text, "host 127.0.0.1");
        // One host in this capture: both flows, both directions.
        assert_eq!(h.app.view.len(), all);
        let flows: BTreeSet<u32> = h
            .app
            .view
            .iter()
            .map(|r| h.app.index.row(*r).unwrap().flow)
            .collect();
        assert_eq!(flows.len(), 2);
        h.key(KeyCode::Esc);
        h.key(KeyCode::Char('c'));
        assert_eq!(h.app.screen, Screen::Flows);
        h.key(KeyCode::Down);
        h.key(KeyCode::Enter);
        assert_eq!(h.app.screen, Screen::Packets);
        assert_eq!(h.app.filter.as_ref().unwrap().text, "flow 1");
        assert!(
            h.app
                .view
                .iter()
                .all(|r| h.app.index.row(*r).unwrap().flow == 1)
        );
        assert!(h.info().contains("STREAM > localhost"));
    }

    #[test]
    fn follow_stream_and_jump_back() {
        let mut h = Harness::new((100, 30));
        h.key(KeyCode::Char('/'));
        h.typ("Sure, 12:30");
        h.key(KeyCode::Enter);
        let row = h.app.selected_row().unwrap();
        h.key(KeyCode::Char('F'));
        assert_eq!(h.app.screen, Screen::Follow);
        let f = h.app.follow.as_ref().unwrap();
        let t = f.transcript.as_ref().unwrap();
        assert_eq!(t.flow, 1, "bob's flow: he sent it");
        assert_eq!(h.app.index.row(row).unwrap().flow, 1);
        let line = &t.lines[f.sel];
        assert_eq!(line.row, row, "cursor on the packet F was pressed on");
        assert!(
            line.text.contains("Sure, 12:30 at the usual place?"),
            "{}",
            line.text
        );
        h.key(KeyCode::Char('g'));
        h.key(KeyCode::Down);
        h.key(KeyCode::Down);
        let target = {
            let f = h.app.follow.as_ref().unwrap();
            f.transcript.as_ref().unwrap().lines[f.sel].row
        };
        h.key(KeyCode::Enter);
        assert_eq!(h.app.screen, Screen::Packets);
        assert_eq!(h.app.selected_row(), Some(target));
        h.key(KeyCode::Char('F'));
        h.key(KeyCode::Esc);
        assert_eq!(h.app.screen, Screen::Packets);
    }

    /// A classic pcap of Ethernet frames, one second apart.
    pub fn write_pcap(path: &std::path::Path, frames: &[Vec<u8>]) {
        let mut b = Vec::new();
        b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&262_144u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        for (i, f) in frames.iter().enumerate() {
            b.extend_from_slice(&(1_700_000_000u32 + u32::try_from(i).unwrap()).to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            let n = u32::try_from(f.len()).unwrap();
            b.extend_from_slice(&n.to_le_bytes());
            b.extend_from_slice(&n.to_le_bytes());
            b.extend_from_slice(f);
        }
        std::fs::write(path, b).unwrap();
    }

    pub fn tcp_frame(
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
        seq: u32,
        syn: bool,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut b = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(src.0, dst.0, 64)
            .tcp(src.1, dst.1, seq, 65535);
        if syn {
            b = b.syn();
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    /// Someone typing XML into telnet: one byte per TCP segment, CRLF
    /// between elements, extra blank lines; the server answers normally.
    /// Follow shows one line per element, as for a client.
    #[test]
    fn follow_a_hand_typed_session_reads_per_element() {
        let typed: &[&[u8]] = &[
            b"<?xml version='1.0'?>\r\n",
            b"<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>\r\n",
            b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>\r\n\r\n",
            b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>telnet</resource></bind></iq>\r\n",
            b" \r\n<presence/>\r\n",
            b"<message to='bob@localhost' type='chat'><body>typed &amp; sent by hand</body></message>\r\n",
            b"</stream:stream>\r\n",
        ];
        let answers: [&[u8]; 4] = [
            b"<?xml version='1.0'?><stream:stream from='localhost' id='s1' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'><stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>",
            b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
            b"<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/telnet</jid></bind></iq>",
            b"</stream:stream>",
        ];
        let c = ([10, 0, 0, 9], 41000);
        let sv = ([10, 0, 0, 10], 5222);
        let mut frames = vec![
            tcp_frame(c, sv, 0, true, b""),
            tcp_frame(sv, c, 0, true, b""),
        ];
        let (mut cseq, mut sseq) = (1u32, 1u32);
        let mut answer = |frames: &mut Vec<Vec<u8>>, i: usize| {
            let a = answers[i];
            frames.push(tcp_frame(sv, c, sseq, false, a));
            sseq += u32::try_from(a.len()).unwrap();
        };
        for (i, element) in typed.iter().enumerate() {
            for b in element.chunks(1) {
                frames.push(tcp_frame(c, sv, cseq, false, b));
                cseq += 1;
            }
            match i {
                1 => answer(&mut frames, 0),
                2 => answer(&mut frames, 1),
                3 => answer(&mut frames, 2),
                6 => answer(&mut frames, 3),
                _ => {}
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("telnet.pcap");
        write_pcap(&path, &frames);
        let path: &'static str = Box::leak(path.to_str().unwrap().to_owned().into_boxed_str());
        let mut h = Harness::open(path, (120, 40), Theme { color: false });
        assert!(h.app.index.len() > 400, "one frame per typed byte");
        h.key(KeyCode::Char('F'));
        let f = h.app.follow.as_ref().unwrap();
        let t = f.transcript.as_ref().unwrap();
        let texts: Vec<String> = t
            .lines
            .iter()
            .map(|l| {
                format!(
                    "{} {}",
                    if l.dir == crate::model::Dir::ClientToServer {
                        "C"
                    } else {
                        "S"
                    },
                    l.text
                )
            })
            .collect();
        let client: Vec<&String> = texts.iter().filter(|l| l.starts_with("C ")).collect();
        // One line per typed element: no line per byte, no blank lines.
        assert_eq!(client.len(), 6, "{texts:#?}");
        assert!(client[0].contains("STREAM > localhost"), "{texts:#?}");
        assert!(client[1].contains("AUTH PLAIN"), "{texts:#?}");
        assert!(
            client[2].contains("BIND") || client[2].contains("IQ"),
            "{texts:#?}"
        );
        assert!(client[3].contains("PRESENCE"), "{texts:#?}");
        assert!(
            client[4].contains("MESSAGE > bob@localhost: typed & sent by hand"),
            "{texts:#?}"
        );
        assert!(client[5].contains("STREAM END"), "{texts:#?}");
        assert!(
            texts
                .iter()
                .all(|l| !l.trim_end().ends_with(" C") && l.len() > 3)
        );
        assert!(
            texts
                .iter()
                .any(|l| l.starts_with("S ") && l.contains("SUCCESS")),
            "{texts:#?}"
        );
        // The element's line leads to the frame of its last byte.
        let msg = t
            .lines
            .iter()
            .find(|l| l.text.contains("typed & sent"))
            .unwrap();
        assert!(
            h.app.index.info(msg.row).contains("MESSAGE"),
            "{}",
            h.app.index.info(msg.row)
        );
        drop(dir);
    }

    #[test]
    fn decoded_pane_events_fold() {
        let mut h = Harness::new((100, 40));
        // Frame 17: three presences.
        let pos = h.app.view.binary_search(&16).unwrap();
        h.app.select(pos);
        h.settle();
        assert_eq!(h.app.detail.as_ref().unwrap().events.len(), 3);
        h.key(KeyCode::Enter);
        assert_eq!(h.app.focus, Pane::Decoded);
        h.key(KeyCode::Down);
        assert_eq!(h.app.event_cursor, 1);
        h.key(KeyCode::Enter);
        assert!(h.app.collapsed.contains(&1));
        h.key(KeyCode::Enter);
        assert!(!h.app.collapsed.contains(&1));
        h.key(KeyCode::Down);
        h.key(KeyCode::Down);
        assert_eq!(h.app.event_cursor, 2);
    }

    #[test]
    fn help_quit_and_ctrl_c() {
        let mut h = Harness::new((80, 24));
        h.key(KeyCode::Char('?'));
        assert!(h.app.help);
        h.key(KeyCode::Esc);
        assert!(!h.app.help);
        // Esc and a key read together arrive as Alt-key.
        h.key(KeyCode::Char('?'));
        h.key_mod(KeyCode::Char('c'), KeyModifiers::ALT);
        assert!(!h.app.help);
        assert_eq!(h.app.screen, Screen::Flows);
        h.key(KeyCode::Char('q'));
        assert!(h.app.quit);
        let mut h = Harness::new((80, 24));
        h.key_mod(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert!(h.app.quit);
        let mut h = Harness::new((80, 24));
        h.app.update(AppEvent::Key(KeyEvent::new(
            KeyCode::Char('z'),
            KeyModifiers::CONTROL,
        )));
        assert!(matches!(
            h.app.take_commands().as_slice(),
            [Command::Suspend]
        ));
    }

    #[test]
    fn mouse_click_and_wheel() {
        let mut h = Harness::new((100, 40));
        let body = layout::table_body(h.app.areas().table);
        h.app.update(AppEvent::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: 5,
            row: body.y + 2,
            modifiers: KeyModifiers::NONE,
        }));
        h.settle();
        assert_eq!(h.app.sel, 2);
        assert_eq!(h.app.detail.as_ref().unwrap().row, h.app.view[2]);
        h.app.update(AppEvent::Mouse(MouseEvent {
            kind: MouseEventKind::ScrollDown,
            column: 5,
            row: body.y,
            modifiers: KeyModifiers::NONE,
        }));
        assert_eq!(h.app.sel, 5);
        let dec = h.app.areas().decoded;
        h.app.update(AppEvent::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: dec.x + 1,
            row: dec.y + 1,
            modifiers: KeyModifiers::NONE,
        }));
        assert_eq!(h.app.focus, Pane::Decoded);
    }
}

//! Drawing: [`view`] lays the screen out and renders one widget per region.
//! Widgets borrow the [`App`] and draw only what is visible, so a frame costs
//! the same with ten packets or ten million.

use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Widget};
use unicode_width::UnicodeWidthChar;

use super::app::{App, Input, Pane, Screen};
use super::filter;
use super::index::{Cat, NONE, Row};
use super::layout;
use super::loader::{LiveStatus, Progress};
use super::theme::Theme;
use super::xml;
use crate::model::{Dir, EventKind, Note, Severity};

/// Every key, as the help overlay lists them.
pub const KEYS: &[(&str, &str)] = &[
    ("↑ ↓  k j", "move (rows, events, lines)"),
    ("PgUp PgDn", "page up / down"),
    ("Ctrl-u Ctrl-d", "half a page up / down"),
    ("Home End  g G", "first / last"),
    ("Tab Shift-Tab", "next / previous pane"),
    ("Enter", "table: go to decoded · decoded: fold event"),
    ("z", "zoom the pane to full screen"),
    ("+ -", "grow / shrink the pane"),
    ("a", "all packets / only XMPP and TLS"),
    ("/", "search Info and XML (regex or text)"),
    ("n N", "next / previous match"),
    ("f :", "filter bar: host, port, jid, kind, type, flow, text"),
    ("h", "only the selected packet's host (all its flows)"),
    ("F", "follow the flow (Enter: go to the packet)"),
    ("c", "flows (Enter: show only that flow)"),
    (
        "S T P R",
        "sign-in, chat, presence, roster views (r: re-read)",
    ),
    ("Esc", "clear filter and search · close a view"),
    ("?", "this help"),
    ("Ctrl-Z", "suspend (fg to resume)"),
    ("q Ctrl-C", "quit"),
    ("mouse", "click selects, wheel scrolls"),
];

/// Draw the whole screen.
pub fn view(app: &App, f: &mut Frame) {
    let area = f.area();
    let a = layout::areas(app, area);
    let buf = f.buffer_mut();
    (&TitleBar { app }).render(a.title, buf);
    match app.screen {
        Screen::Packets => {
            (&PacketTable { app }).render(a.table, buf);
            (&DecodedPane { app }).render(a.decoded, buf);
            (&BytesPane { app }).render(a.bytes, buf);
        }
        Screen::Follow => (&FollowView { app }).render(a.main, buf),
        Screen::Flows => (&FlowsTable { app }).render(a.main, buf),
        Screen::Story(kind) => (&super::story::StoryView { app, kind }).render(a.main, buf),
    }
    (&StatusBar { app }).render(a.status, buf);
    if app.help {
        (&Help { theme: app.theme }).render(area, buf);
    }
}

pub(super) fn put(buf: &mut Buffer, area: Rect, row: u16, line: &Line<'_>) {
    if row >= area.height || area.width == 0 {
        return;
    }
    let r = Rect {
        y: area.y + row,
        height: 1,
        ..area
    };
    line.render(r, buf);
}

pub(super) fn fill(buf: &mut Buffer, area: Rect, row: u16, style: Style) {
    if row >= area.height || area.width == 0 {
        return;
    }
    buf.set_style(
        Rect {
            y: area.y + row,
            height: 1,
            ..area
        },
        style,
    );
}

/// Width-aware cut to `w` columns, with an ellipsis when cut.
fn fit(s: &str, w: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    let total: usize = s.chars().map(|c| c.width().unwrap_or(0)).sum();
    if total <= w {
        return s.to_owned();
    }
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if used + cw + 1 > w {
            break;
        }
        out.push(c);
        used += cw;
    }
    if w > 0 {
        out.push('…');
    }
    out
}

fn pad(s: &str, w: usize, right: bool) -> String {
    let s = fit(s, w);
    let sw: usize = s.chars().map(|c| c.width().unwrap_or(0)).sum();
    let gap = " ".repeat(w.saturating_sub(sw));
    if right {
        format!("{gap}{s}")
    } else {
        format!("{s}{gap}")
    }
}

/// A pane's title line.
pub(super) fn title_line(buf: &mut Buffer, area: Rect, text: &str, focused: bool, t: Theme) {
    fill(buf, area, 0, t.title(false));
    let style = t.title(focused);
    put(
        buf,
        area,
        0,
        &Line::from(vec![Span::styled(format!(" {text} "), style)]),
    );
}

/// Wrap a styled line to `width` columns at spaces when it can (never inside
/// the masking marker); continuation lines keep its indent.
#[must_use]
pub fn wrap(line: Line<'static>, width: usize) -> Vec<Line<'static>> {
    if width == 0 || line.width() <= width {
        return vec![line];
    }
    // (char, width, style, may break before it)
    let mut cells: Vec<(char, usize, Style, bool)> = Vec::new();
    for span in &line.spans {
        let atomic = span.content == xml::MASK;
        let mut prev_space = cells.last().is_some_and(|c| c.0 == ' ');
        for (k, ch) in span.content.chars().enumerate() {
            let brk = if atomic {
                k == 0
            } else {
                prev_space && ch != ' '
            };
            cells.push((ch, ch.width().unwrap_or(0), span.style, brk));
            prev_space = ch == ' ';
        }
    }
    let indent = cells
        .iter()
        .take_while(|c| c.0 == ' ')
        .count()
        .min(width / 2);
    let mut out = Vec::new();
    let mut start = 0;
    let mut first = true;
    while start < cells.len() {
        let lead = if first { 0 } else { indent };
        let mut w = lead;
        let mut end = start;
        while let Some(c) = cells.get(end) {
            if w + c.1 > width && end > start {
                break;
            }
            w += c.1;
            end += 1;
        }
        if end < cells.len() {
            // Prefer the last break opportunity after the line's start.
            if let Some(b) = (start + 1..=end)
                .rev()
                .find(|i| cells.get(*i).is_some_and(|c| c.3))
                && b > start + usize::from(first) * indent
            {
                end = b;
            }
        }
        let mut spans: Vec<Span<'static>> = Vec::new();
        if lead > 0 {
            spans.push(Span::raw(" ".repeat(lead)));
        }
        let mut text = String::new();
        let mut style = cells.get(start).map_or(Style::new(), |c| c.2);
        for c in cells.get(start..end).unwrap_or_default() {
            if c.2 != style && !text.is_empty() {
                spans.push(Span::styled(std::mem::take(&mut text), style));
            }
            style = c.2;
            text.push(c.0);
        }
        if !text.is_empty() {
            spans.push(Span::styled(text, style));
        }
        out.push(Line::from(spans));
        start = end;
        first = false;
    }
    out
}

struct TitleBar<'a> {
    app: &'a App,
}

impl Widget for &TitleBar<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let app = self.app;
        let t = app.theme;
        fill(buf, area, 0, t.bar());
        // Long paths: the file name is enough.
        let name = if app.path.chars().count() > 40 {
            std::path::Path::new(&app.path)
                .file_name()
                .map_or(app.path.clone(), |n| n.to_string_lossy().into_owned())
        } else {
            app.path.clone()
        };
        let name = match &app.progress.live {
            Some(l) => format!(
                "{} {}",
                if l.running { "● live" } else { "■ stopped" },
                l.interfaces.join(", ")
            ),
            None => name,
        };
        let mut s = format!(
            " xmppscope │ {name} │ {} packets │ {} shown",
            app.index.len(),
            app.view.len()
        );
        s.push_str(if app.show_all {
            " (all)"
        } else {
            " (XMPP/TLS)"
        });
        if let Some(f) = &app.filter {
            let _ = write!(s, " │ filter: {}", f.text);
        }
        if let Some(q) = &app.search {
            let _ = write!(
                s,
                " │ /{}/ {} match{}{}",
                q.text,
                q.hits.len(),
                if q.hits.len() == 1 { "" } else { "es" },
                if q.done { "" } else { "…" }
            );
        }
        put(buf, area, 0, &Line::styled(s, t.bar()));
    }
}

/// Column kinds of the packet table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    No,
    Time,
    Src,
    Dst,
    Proto,
    Len,
    Info,
}

/// The table's columns for this width, with their widths.
fn columns(app: &App, width: u16) -> Vec<(Col, usize)> {
    let width = usize::from(width);
    let no_w = app.index.len().max(1).to_string().len().max(3);
    let last_ts = app.index.last_ts();
    let time_w = format!("{:.6}", secs(last_ts)).len().max(8);
    let addr_w = app.index.addr_width().clamp(11, 39);
    let mut cols = vec![
        (Col::No, no_w),
        (Col::Time, time_w),
        (Col::Src, addr_w),
        (Col::Dst, addr_w),
        (Col::Proto, 6),
        (Col::Len, 6),
    ];
    // Marker column + separators; Info wants at least 24.
    let need = |cols: &[(Col, usize)]| 1 + cols.iter().map(|(_, w)| w + 1).sum::<usize>() + 24;
    for drop in [Col::Len, Col::Time, Col::Dst, Col::Src, Col::Proto] {
        if need(&cols) <= width {
            break;
        }
        cols.retain(|(c, _)| *c != drop);
    }
    let used = 1 + cols.iter().map(|(_, w)| w + 1).sum::<usize>();
    cols.push((Col::Info, width.saturating_sub(used)));
    cols
}

#[allow(clippy::cast_precision_loss)]
fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

struct PacketTable<'a> {
    app: &'a App,
}

impl PacketTable<'_> {
    fn cell(&self, col: Col, row: u32, r: &Row) -> String {
        let idx = &self.app.index;
        match col {
            Col::No => (u64::from(row) + 1).to_string(),
            Col::Time => format!("{:.6}", secs(r.ts)),
            Col::Src | Col::Dst => {
                let a = idx.addr(if col == Col::Src { r.src } else { r.dst });
                match a {
                    Some(a) if self.app.resolve_names => idx
                        .names
                        .name_of(&a)
                        .map_or_else(|| a.to_string(), str::to_owned),
                    Some(a) => a.to_string(),
                    None => String::new(),
                }
            }
            // A lock marks XMPP read from inside TLS with the key log.
            Col::Proto if r.flags & crate::ui::index::flag::DECRYPTED != 0 => {
                format!("{}🔒", r.proto().as_str())
            }
            Col::Proto => r.proto().as_str().to_owned(),
            Col::Len => r.len.to_string(),
            Col::Info => idx.info(row),
        }
    }
}

impl Widget for &PacketTable<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.is_empty() {
            return;
        }
        let app = self.app;
        let t = app.theme;
        let focused = app.focus == Pane::Table;
        title_line(
            buf,
            area,
            &format!("Packets {}/{}", app.view.len(), app.index.len()),
            focused,
            t,
        );
        let header_area = layout::pane_body(area);
        let cols = columns(app, area.width);
        let mut header = String::from(" ");
        for (c, w) in &cols {
            let name = match c {
                Col::No => "No.",
                Col::Time => "Time",
                Col::Src => "Source",
                Col::Dst => "Destination",
                Col::Proto => "Proto",
                Col::Len => "Length",
                Col::Info => "Info",
            };
            header.push_str(&pad(name, *w, matches!(c, Col::No | Col::Len)));
            header.push(' ');
        }
        fill(buf, header_area, 0, t.header());
        put(buf, header_area, 0, &Line::styled(header, t.header()));
        let body = layout::table_body(area);
        if app.view.is_empty() {
            let msg = if let Some(l) = app.progress.live.as_ref().filter(|l| l.running) {
                format!(
                    "waiting for packets on {} (capture filter {})…",
                    l.interfaces.join(", "),
                    crate::live::session::filter_label(&l.filter)
                )
            } else if !app.progress.done {
                "loading…".to_owned()
            } else if app.index.is_empty() {
                "no packets in this capture".to_owned()
            } else {
                "no packets match · Esc clears the filter · a shows all packets".to_owned()
            };
            put(buf, body, 0, &Line::styled(format!(" {msg}"), t.dim()));
            return;
        }
        let h = usize::from(body.height);
        // The same scrolling rule as App::selection_changed, for any size.
        let mut top = app.top.min(app.sel);
        if app.sel >= top + h {
            top = app.sel + 1 - h;
        }
        for (i, pos) in (top..app.view.len()).take(h).enumerate() {
            let Some(&row) = app.view.get(pos) else { break };
            let Some(r) = app.index.row(row) else { break };
            let y = u16::try_from(i).unwrap_or(u16::MAX);
            let mut style = t.cat(r.cat());
            let hit = app.search.as_ref().is_some_and(|s| s.hits.contains(&row));
            let mut spans = Vec::with_capacity(cols.len() * 2 + 1);
            let sev = r.severity();
            spans.push(if sev > 0 {
                Span::styled("!", t.note(sev))
            } else {
                Span::raw(" ")
            });
            for (c, w) in &cols {
                let text = pad(&self.cell(*c, row, &r), *w, matches!(c, Col::No | Col::Len));
                let st = if *c == Col::No && hit {
                    style.patch(t.hit())
                } else {
                    style
                };
                spans.push(Span::styled(text, st));
                spans.push(Span::styled(" ", style));
            }
            if pos == app.sel {
                style = style.patch(t.selected());
                for s in &mut spans {
                    s.style = s.style.patch(t.selected());
                }
                fill(buf, body, y, style);
            }
            put(buf, body, y, &Line::from(spans));
        }
    }
}

/// The decoded pane's text at one width, and where each event's header is.
#[derive(Debug, Default)]
pub struct DecodedText {
    pub lines: Vec<Line<'static>>,
    pub headers: Vec<usize>,
}

fn note_line(n: &Note, indent: usize, t: Theme) -> Line<'static> {
    let sev = match n.severity {
        Severity::Chat | Severity::Note => 1,
        Severity::Warn => 2,
        Severity::Error => 3,
    };
    Line::from(vec![
        Span::raw(" ".repeat(indent)),
        Span::styled(format!("⚠ expert: {n}"), t.note(sev)),
    ])
}

/// Build the decoded pane's lines for the selected packet.
#[must_use]
pub fn decoded_text(app: &App, width: u16) -> DecodedText {
    let t = app.theme;
    let mut out = DecodedText::default();
    let mut logical: Vec<(Line<'static>, Option<usize>)> = Vec::new();
    let Some(row) = app.selected_row() else {
        out.lines.push(Line::styled("no packet selected", t.dim()));
        return out;
    };
    let Some(r) = app.index.row(row) else {
        return out;
    };
    let flow = app.index.flow(r.flow);
    let (src, dst) = match (flow, r.dir()) {
        (Some(f), Some(Dir::ServerToClient)) => (
            format!("{}:{}", f.server.0, f.server.1),
            format!("{}:{}", f.client.0, f.client.1),
        ),
        (Some(f), _) => (
            format!("{}:{}", f.client.0, f.client.1),
            format!("{}:{}", f.server.0, f.server.1),
        ),
        _ => (
            app.index
                .addr(r.src)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            app.index
                .addr(r.dst)
                .map(|a| a.to_string())
                .unwrap_or_default(),
        ),
    };
    let mut head = format!(
        "Frame {}: {} bytes on wire · {:.6} s · {src} → {dst}",
        u64::from(row) + 1,
        r.len,
        secs(r.ts)
    );
    if r.flow != NONE {
        let _ = write!(
            head,
            " · flow {} {}",
            r.flow,
            r.dir().map_or("", Dir::as_str)
        );
    }
    logical.push((Line::styled(head, t.dim()), None));
    let detail = app.detail.as_ref().filter(|d| d.row == row);
    let search = app.search.as_ref().map(|s| &s.re);
    let hl = |l: Line<'static>| match search {
        Some(re) => xml::highlight(l, re, t.hit()),
        None => l,
    };
    match detail {
        None => logical.push((Line::styled("decoding…", t.dim()), None)),
        Some(d) => {
            for n in &d.notes {
                logical.push((note_line(n, 0, t), None));
            }
            let focused = app.focus == Pane::Decoded;
            for (i, e) in d.events.iter().enumerate() {
                let cat = super::index::category(e);
                let folded = app.collapsed.contains(&i);
                let mut hs = t.cat(cat);
                if focused && i == app.event_cursor {
                    hs = hs.patch(t.selected());
                }
                let frames: Vec<String> = e.frames.iter().map(u64::to_string).collect();
                let header = Line::from(vec![
                    Span::styled(format!("{} {}", if folded { "▶" } else { "▼" }, e.info), hs),
                    Span::styled(
                        format!(
                            "  {}{} · {} · frame{} {} · {} bytes",
                            e.kind_name(),
                            if e.decrypted { " (decrypted TLS)" } else { "" },
                            e.dir.as_str(),
                            if frames.len() == 1 { "" } else { "s" },
                            frames.join(","),
                            e.len
                        ),
                        t.dim(),
                    ),
                ]);
                logical.push((hl(header), Some(i)));
                if folded {
                    continue;
                }
                // IQ request/response pairing.
                if let Some(req) = e.response_to {
                    let ms = e
                        .response_time
                        .map_or(String::new(), |s| format!(", {:.3} ms", s * 1e3));
                    logical.push((
                        Line::styled(format!("    ↩ response to frame {req}{ms}"), t.dim()),
                        None,
                    ));
                }
                if let Some(resp) = e.response_in {
                    logical.push((
                        Line::styled(format!("    ↪ answered in frame {resp}"), t.dim()),
                        None,
                    ));
                }
                if e.kind == EventKind::Tls {
                    if e.details.is_none() {
                        logical.push((
                            Line::styled(
                                format!("    TLS record ({} bytes)", e.len),
                                t.cat(Cat::Tls),
                            ),
                            None,
                        ));
                    }
                } else {
                    for l in xml::pretty(&e.xml, 4, t) {
                        logical.push((hl(l), None));
                    }
                }
                // What the dissector decoded (SASL steps, TLS handshakes,
                // features, stanza fields), secrets masked.
                if let Some(v) = &e.details {
                    let mut s = String::new();
                    crate::xmpp::detail::write_readable(v, 3, &mut s);
                    if !s.is_empty() && e.kind != EventKind::Tls {
                        logical.push((Line::styled("    decoded:", t.dim()), None));
                    }
                    for l in s.lines() {
                        logical.push((hl(xml::detail_line(l, t)), None));
                    }
                }
                for n in &e.notes {
                    logical.push((note_line(n, 4, t), None));
                }
            }
            if let Some((ev, notes)) = app.index.extras(row) {
                logical.push((
                    Line::styled(
                        "Flushed here (held data released at the end or on eviction):",
                        t.dim(),
                    ),
                    None,
                ));
                for e in ev {
                    logical.push((
                        Line::styled(format!("  {}", e.info), t.cat(super::index::category(e))),
                        None,
                    ));
                }
                for n in notes {
                    logical.push((note_line(n, 2, t), None));
                }
            }
            if let Err(why) = &d.bytes {
                logical.push((
                    Line::styled(format!("Info: {}", app.index.info(row)), t.cat(r.cat())),
                    None,
                ));
                logical.push((Line::styled(format!("(no XML: {why})"), t.dim()), None));
            } else if d.events.is_empty() {
                let what = if r.flow == NONE {
                    "Not a TCP segment we follow.".to_owned()
                } else {
                    format!("No XMPP completes in this frame: {}", app.index.info(row))
                };
                logical.push((Line::styled(what, t.dim()), None));
            }
        }
    }
    for (l, ev) in logical {
        if let Some(i) = ev
            && out.headers.len() == i
        {
            out.headers.push(out.lines.len());
        }
        out.lines.extend(wrap(l, usize::from(width)));
    }
    out
}

struct DecodedPane<'a> {
    app: &'a App,
}

impl Widget for &DecodedPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.is_empty() {
            return;
        }
        let app = self.app;
        let d = decoded_text(app, area.width);
        let body = layout::pane_body(area);
        let h = usize::from(body.height);
        let top = app.decoded_scroll.min(d.lines.len().saturating_sub(1));
        let more = if d.lines.len() > top + h {
            format!(" ↓{}", d.lines.len() - top - h)
        } else {
            String::new()
        };
        title_line(
            buf,
            area,
            &format!(
                "Decoded{}{more}",
                if top > 0 {
                    format!(" ↑{top}")
                } else {
                    String::new()
                }
            ),
            app.focus == Pane::Decoded,
            app.theme,
        );
        for (i, l) in d.lines.iter().skip(top).take(h).enumerate() {
            put(buf, body, u16::try_from(i).unwrap_or(u16::MAX), l);
        }
    }
}

struct BytesPane<'a> {
    app: &'a App,
}

/// Where the bytes of an event (its XML as on the wire) are in a frame: the
/// whole of it, or its end when it began in an earlier frame.
#[must_use]
pub fn event_range(
    bytes: &[u8],
    payload: &std::ops::Range<usize>,
    xml: &str,
) -> Option<std::ops::Range<usize>> {
    let pl = bytes.get(payload.clone())?;
    let x = xml.as_bytes();
    if x.is_empty() || pl.is_empty() {
        return None;
    }
    if let Some(at) = memchr::memmem::find(pl, x) {
        return Some(payload.start + at..payload.start + at + x.len());
    }
    let k = (1..=x.len().min(pl.len()))
        .rev()
        .find(|k| pl.starts_with(x.get(x.len() - k..).unwrap_or_default()))?;
    Some(payload.start..payload.start + k)
}

/// Hex dump lines of `bytes`, `per` bytes a line; `payload` highlighted,
/// the selected event's bytes `event` reversed, `secrets` replaced by `*`.
#[must_use]
pub fn hex_lines(
    bytes: &[u8],
    per: usize,
    payload: Option<&std::ops::Range<usize>>,
    event: Option<&std::ops::Range<usize>>,
    secrets: &[std::ops::Range<usize>],
    t: Theme,
) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    for (n, chunk) in bytes.chunks(per.max(1)).enumerate() {
        let base = n * per;
        let mut spans = vec![Span::styled(format!("{base:04x}  "), t.dim())];
        let mut ascii = Vec::new();
        for i in 0..per {
            if i == per / 2 && per >= 8 {
                spans.push(Span::raw(" "));
            }
            let at = base + i;
            let Some(&b) = chunk.get(i) else {
                spans.push(Span::raw("   "));
                continue;
            };
            let secret = secrets.iter().any(|r| r.contains(&at));
            let mut style = if secret {
                t.masked()
            } else if payload.is_some_and(|p| p.contains(&at)) {
                t.payload()
            } else {
                Style::new()
            };
            if !secret && event.is_some_and(|e| e.contains(&at)) {
                style = style.patch(t.selected());
            }
            if secret {
                spans.push(Span::styled("**", style));
                ascii.push(Span::styled("*", style));
            } else {
                spans.push(Span::styled(format!("{b:02x}"), style));
                let c = if b.is_ascii_graphic() || b == b' ' {
                    char::from(b)
                } else {
                    '.'
                };
                ascii.push(Span::styled(c.to_string(), style));
            }
            spans.push(Span::raw(" "));
        }
        spans.push(Span::raw(" "));
        spans.extend(ascii);
        out.push(Line::from(spans));
    }
    out
}

impl Widget for &BytesPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.is_empty() {
            return;
        }
        let app = self.app;
        let t = app.theme;
        let body = layout::pane_body(area);
        let row = app.selected_row();
        let d = app.detail.as_ref().filter(|d| Some(d.row) == row);
        let mut title = String::from("Bytes");
        let lines = match d.map(|d| (&d.bytes, d)) {
            None => vec![Line::styled(
                if row.is_some() { "reading…" } else { "" },
                t.dim(),
            )],
            Some((Err(e), _)) => vec![Line::styled(e.clone(), t.dim())],
            Some((Ok(bytes), d)) => {
                let _ = write!(title, " ({} captured", bytes.len());
                if d.payload.as_ref().is_some_and(|p| !p.is_empty()) {
                    title.push_str(", TCP payload highlighted");
                }
                if !d.secrets.is_empty() && !app.show_secrets {
                    title.push_str(", secret masked");
                }
                let secrets: &[std::ops::Range<usize>] =
                    if app.show_secrets { &[] } else { &d.secrets };
                let event = d.events.get(app.event_cursor).and_then(|e| {
                    d.payload
                        .as_ref()
                        .and_then(|p| event_range(bytes, p, &e.xml))
                });
                if event.is_some() && d.events.len() > 1 {
                    let _ = write!(title, ", event {} reversed", app.event_cursor + 1);
                } else if event.is_some() {
                    title.push_str(", event reversed");
                }
                title.push(')');
                hex_lines(
                    bytes,
                    layout::bytes_per_line(area.width),
                    d.payload.as_ref(),
                    event.as_ref(),
                    secrets,
                    t,
                )
            }
        };
        title_line(buf, area, &title, app.focus == Pane::Bytes, t);
        let top = app.bytes_scroll.min(lines.len().saturating_sub(1));
        for (i, l) in lines
            .iter()
            .skip(top)
            .take(usize::from(body.height))
            .enumerate()
        {
            put(buf, body, u16::try_from(i).unwrap_or(u16::MAX), l);
        }
    }
}

struct FollowView<'a> {
    app: &'a App,
}

impl Widget for &FollowView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.is_empty() {
            return;
        }
        let app = self.app;
        let t = app.theme;
        let Some(f) = &app.follow else { return };
        let flow = app.index.flow(f.flow);
        let ends = flow.map_or(String::new(), |s| {
            format!(
                " {}:{} (client) ⇄ {}:{} (server)",
                s.client.0, s.client.1, s.server.0, s.server.1
            )
        });
        title_line(buf, area, &format!("Follow flow {}{ends}", f.flow), true, t);
        let head = pane_line(area, 1);
        let legend = Line::from(vec![
            Span::styled(" client → server ", t.dir(Dir::ClientToServer)),
            Span::styled(" server → client ", t.dir(Dir::ServerToClient)),
            Span::styled(" · Enter: go to the packet · Esc: back", t.dim()),
        ]);
        put(buf, head, 0, &legend);
        let body = layout::list_body(area);
        let Some(tr) = &f.transcript else {
            put(buf, body, 0, &Line::styled(" decoding the flow…", t.dim()));
            return;
        };
        if let Some(p) = &tr.problem {
            put(buf, body, 0, &Line::styled(format!(" {p}"), t.error()));
            return;
        }
        if tr.lines.is_empty() {
            put(
                buf,
                body,
                0,
                &Line::styled(" no XMPP in this flow", t.dim()),
            );
            return;
        }
        let h = usize::from(body.height);
        let mut top = f.top.min(f.sel);
        if f.sel >= top + h {
            top = f.sel + 1 - h;
        }
        if tr.lines.len() <= h {
            top = 0;
        }
        let first = app.index.first_ts.unwrap_or_default();
        for (i, l) in tr.lines.iter().enumerate().skip(top).take(h) {
            let (arrow, who) = match l.dir {
                Dir::ClientToServer => ("C→S", t.dir(Dir::ClientToServer)),
                Dir::ServerToClient => ("S→C", t.dir(Dir::ServerToClient)),
            };
            let mut spans = vec![
                Span::styled(format!("{:>11.6} ", l.time.since(first)), t.dim()),
                Span::styled(format!("{arrow} "), who),
                Span::styled(l.text.clone(), who),
            ];
            if l.cat == Cat::Error || !l.notes.is_empty() {
                spans.push(Span::styled(
                    format!("  ⚠ {}", l.notes.join("; ")),
                    t.note(2),
                ));
            }
            let mut line = Line::from(spans);
            if i == f.sel {
                line = line.patch_style(t.selected());
                fill(buf, body, u16::try_from(i - top).unwrap_or(0), t.selected());
            }
            put(buf, body, u16::try_from(i - top).unwrap_or(u16::MAX), &line);
        }
        if tr.truncated {
            let y = u16::try_from(tr.lines.len().saturating_sub(top)).unwrap_or(u16::MAX);
            put(
                buf,
                body,
                y,
                &Line::styled(" (transcript cut short)", t.dim()),
            );
        }
    }
}

/// One line of a region, as a region.
pub(super) fn pane_line(area: Rect, row: u16) -> Rect {
    if row >= area.height {
        return Rect::default();
    }
    Rect {
        y: area.y + row,
        height: 1,
        ..area
    }
}

struct FlowsTable<'a> {
    app: &'a App,
}

fn human_bytes(n: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let f = n as f64;
    if n >= 1 << 30 {
        format!("{:.1} GiB", f / f64::from(1u32 << 30))
    } else if n >= 1 << 20 {
        format!("{:.1} MiB", f / f64::from(1u32 << 20))
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", f / 1024.0)
    } else {
        format!("{n} B")
    }
}

impl Widget for &FlowsTable<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.is_empty() {
            return;
        }
        let app = self.app;
        let t = app.theme;
        title_line(
            buf,
            area,
            &format!(
                "Flows ({}) · Enter: show only that flow · F: follow · Esc: back",
                app.index.flow_count()
            ),
            true,
            t,
        );
        let head = pane_line(area, 1);
        let ep_w = app.index.addr_width().clamp(9, 39) + 6;
        // Columns that do not fit go, least useful first; JIDs take the rest.
        let mut cols: Vec<(&str, usize)> = vec![
            ("Flow", 5),
            ("Client", ep_w),
            ("Server", ep_w),
            ("Type", 8),
            ("Sign-in", 26),
            ("Packets", 8),
            ("Bytes", 10),
            ("Duration", 9),
        ];
        let width = usize::from(area.width);
        for drop in ["Duration", "Bytes", "Packets", "Type"] {
            if cols.iter().map(|(_, w)| w + 1).sum::<usize>() + 16 <= width {
                break;
            }
            cols.retain(|(n, _)| *n != drop);
        }
        let used: usize = cols.iter().map(|(_, w)| w + 1).sum();
        cols.push(("JIDs", width.saturating_sub(used)));
        let mut header = String::new();
        for (name, w) in &cols {
            header.push_str(&pad(name, *w, false));
            header.push(' ');
        }
        fill(buf, head, 0, t.header());
        put(buf, head, 0, &Line::styled(header, t.header()));
        let body = layout::list_body(area);
        let h = usize::from(body.height);
        let sel = app.flows.sel;
        let mut top = app.flows.top.min(sel);
        if sel >= top + h {
            top = sel + 1 - h;
        }
        for (i, f) in app.index.flows().enumerate().skip(top).take(h) {
            let mut jids = f.jids.join(" ");
            if f.more_jids > 0 {
                let _ = write!(jids, " +{}", f.more_jids);
            }
            let cell = |name: &str| match name {
                "Flow" => f.id.to_string(),
                "Client" => format!("{}:{}", f.client.0, f.client.1),
                "Server" => format!("{}:{}", f.server.0, f.server.1),
                "Type" => f.class().to_owned(),
                "Sign-in" => f.signin_text(),
                "Packets" => f.packets.to_string(),
                "Bytes" => human_bytes(f.bytes),
                "Duration" => format!("{:.3}s", f.last.since(f.first)),
                _ => jids.clone(),
            };
            let cat = if f.failed {
                Cat::Error
            } else if f.xmpp {
                Cat::Stream
            } else if f.tls {
                Cat::Tls
            } else {
                Cat::None
            };
            let mut style = t.cat(cat);
            if i == sel {
                style = style.patch(t.selected());
            }
            let mut s = String::new();
            for (name, w) in &cols {
                s.push_str(&pad(&cell(name), *w, false));
                s.push(' ');
            }
            let y = u16::try_from(i - top).unwrap_or(u16::MAX);
            if i == sel {
                fill(buf, body, y, style);
            }
            put(buf, body, y, &Line::styled(s, style));
        }
    }
}

/// A live capture's status line: interfaces, capture filter, packets,
/// libpcap's and xmppscope's drops, and where the packets are saved; a
/// shorter form when the line is narrow.
fn live_status(l: &LiveStatus, p: &Progress, width: u16, t: Theme) -> Line<'static> {
    let opt = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
    let st = &l.stats;
    let ifaces = l.interfaces.join(", ");
    let filter = crate::live::session::filter_label(&l.filter);
    let dropped = st.kernel_dropped.unwrap_or(0) + st.if_dropped.unwrap_or(0) + st.queue_dropped;
    let (kernel, iface, ours) = (opt(st.kernel_dropped), opt(st.if_dropped), st.queue_dropped);
    let saved = l.savefile.as_deref();
    let full = (
        if l.running {
            format!(" ● Capturing on {ifaces}")
        } else {
            format!(" ■ Capture on {ifaces} stopped")
        },
        format!(
            " · filter {filter} · {} packets · dropped: kernel {kernel}, interface {iface}, xmppscope {ours}",
            p.packets
        ),
        match saved {
            Some(f) => format!(" · saving to {f} · ? help · q quits"),
            None => " · not saved (-w FILE) · ? help · q quits".to_owned(),
        },
    );
    let len = |x: &(String, String, String)| {
        x.0.chars().count() + x.1.chars().count() + x.2.chars().count()
    };
    let parts = if len(&full) <= usize::from(width) {
        full
    } else {
        (
            format!(" {} {ifaces}", if l.running { "●" } else { "■" }),
            format!(" · {} pkts · drops {kernel}/{iface}/{ours}", p.packets),
            format!(
                " · {filter}{}",
                saved.map_or_else(String::new, |f| format!(" · → {f}"))
            ),
        )
    };
    Line::from(vec![
        Span::styled(
            parts.0,
            if l.running { t.ok() } else { t.key() }.patch(t.bar()),
        ),
        Span::styled(parts.1, if dropped > 0 { t.error() } else { t.bar() }),
        Span::styled(parts.2, t.bar()),
    ])
}

struct StatusBar<'a> {
    app: &'a App,
}

impl Widget for &StatusBar<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.is_empty() {
            return;
        }
        let app = self.app;
        let t = app.theme;
        fill(buf, area, 0, t.bar());
        match &app.input {
            Input::Search(s) => {
                put(
                    buf,
                    area,
                    0,
                    &Line::from(vec![
                        Span::styled("/", t.key()),
                        Span::styled(format!("{s}█"), t.bar()),
                        Span::styled("   Enter: search Info and XML · Esc: cancel", t.bar()),
                    ]),
                );
                return;
            }
            Input::Filter(s) => {
                let check = match filter::parse_with(s, &app.index.names) {
                    Ok(None) => Span::styled("  (empty: no filter)", t.bar()),
                    Ok(Some(_)) => Span::styled("  ✓ valid", t.ok()),
                    Err(e) => Span::styled(format!("  ✗ {e}"), t.error()),
                };
                put(
                    buf,
                    area,
                    0,
                    &Line::from(vec![
                        Span::styled("filter: ", t.key()),
                        Span::styled(format!("{s}█"), t.bar()),
                        check,
                    ]),
                );
                return;
            }
            Input::None => {}
        }
        if let Some(msg) = &app.status {
            put(buf, area, 0, &Line::styled(format!(" {msg}"), t.bar()));
            return;
        }
        let p = &app.progress;
        if let Some(l) = &p.live {
            put(buf, area, 0, &live_status(l, p, area.width, t));
            return;
        }
        if !p.done {
            // A gauge: the part of the line filled as the file is read.
            let mut s = String::from(" Loading");
            if let Some(fr) = p.fraction() {
                let _ = write!(s, " {:.0}%", fr * 100.0);
            }
            #[allow(clippy::cast_precision_loss)]
            let mb = |b: u64| b as f64 / 1e6;
            let _ = write!(s, " · {:.1}", mb(p.bytes));
            if let Some(total) = p.total {
                let _ = write!(s, "/{:.1}", mb(total));
            }
            let _ = write!(
                s,
                " MB · {} packets · {:.0}k pkt/s",
                p.packets,
                p.rate() / 1000.0
            );
            if let Some(eta) = p.eta() {
                let _ = write!(s, " · {}s left", eta.as_secs() + 1);
            }
            put(buf, area, 0, &Line::styled(s, t.bar()));
            if let Some(fr) = p.fraction() {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let w = (f64::from(area.width) * fr).round() as u16;
                buf.set_style(
                    Rect {
                        width: w.min(area.width),
                        ..area
                    },
                    t.selected().patch(t.ok()),
                );
            }
            return;
        }
        let mut spans = Vec::new();
        let hints: &[(&str, &str)] = match app.screen {
            Screen::Packets => &[
                ("?", "help"),
                ("q", "quit"),
                ("/", "search"),
                ("f", "filter"),
                ("h", "host"),
                ("a", "all"),
                ("F", "follow"),
                ("c", "flows"),
                ("S T P R", "stories"),
                ("Tab", "pane"),
                ("z", "zoom"),
            ],
            Screen::Follow => &[("Enter", "go to packet"), ("Esc", "back"), ("q", "quit")],
            Screen::Story(_) => &[
                ("Enter", "go to packet"),
                ("r", "read again"),
                ("S T P R", "views"),
                ("Esc q", "back"),
            ],
            Screen::Flows => &[
                ("Enter", "filter to flow"),
                ("F", "follow"),
                ("Esc", "back"),
                ("q", "quit"),
            ],
        };
        for (k, what) in hints {
            spans.push(Span::styled(format!(" {k}"), t.key().patch(t.bar())));
            spans.push(Span::styled(format!(" {what} "), t.bar()));
        }
        if let Some(prob) = &p.problem {
            spans.push(Span::styled(format!(" {prob}"), t.error()));
        }
        put(buf, area, 0, &Line::from(spans));
    }
}

struct Help {
    theme: Theme,
}

impl Widget for &Help {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let w = area.width.min(72);
        let h = area
            .height
            .min(u16::try_from(KEYS.len() + 4).unwrap_or(u16::MAX));
        if w < 4 || h < 3 {
            return;
        }
        let r = Rect {
            x: area.x + (area.width - w) / 2,
            y: area.y + (area.height - h) / 2,
            width: w,
            height: h,
        };
        Clear.render(r, buf);
        let block = Block::new()
            .borders(Borders::ALL)
            .title(" Keys · any key closes ")
            .border_style(t.key());
        let inner = block.inner(r);
        block.render(r, buf);
        let mut legend = vec![Span::raw(" ")];
        for (c, name) in [
            (Cat::Stream, "sign-in"),
            (Cat::Sasl, "SASL"),
            (Cat::Tls, "TLS"),
            (Cat::Presence, "presence"),
            (Cat::Message, "message"),
            (Cat::Iq, "iq"),
            (Cat::Error, "error"),
        ] {
            legend.push(Span::styled(name, t.cat(c)));
            legend.push(Span::raw(" "));
        }
        legend.push(Span::styled("!", t.note(2)));
        legend.push(Span::raw(" expert note"));
        let mut lines = vec![Line::from(legend)];
        for (k, what) in KEYS {
            lines.push(Line::from(vec![
                Span::styled(format!(" {k:<15}"), t.key()),
                Span::raw(*what),
            ]));
        }
        for (i, l) in lines.iter().enumerate() {
            put(buf, inner, u16::try_from(i).unwrap_or(u16::MAX), l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::app::tests::Harness;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::KeyCode;

    const SIZES: [(u16, u16); 4] = [(1, 1), (20, 5), (80, 24), (200, 60)];

    fn draw(app: &App, w: u16, h: u16) -> String {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| view(app, f)).unwrap();
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

    fn at(w: u16, h: u16) -> Harness {
        Harness::new((w, h))
    }

    fn no_secret(screen: &str) {
        assert!(!screen.contains("alice-wonderland-42"), "{screen}");
        assert!(!screen.contains("AGFsaWNlAGFsaWNl"), "{screen}");
        assert!(!screen.contains("YWxpY2"), "{screen}");
        for frag in ["AGFs", "aWNl", "LXdv", "bmRl", "cmxh"] {
            assert!(
                !screen.contains(frag),
                "fragment {frag} of the secret in:\n{screen}"
            );
        }
    }

    #[test]
    fn every_screen_at_every_size() {
        for (w, h) in SIZES {
            let mut hs = at(w, h);
            let mut screens = vec![draw(&hs.app, w, h)];
            for keys in [
                vec![KeyCode::Char('?')],
                vec![KeyCode::Esc, KeyCode::Char('F')],
                vec![KeyCode::Esc, KeyCode::Char('c')],
                vec![KeyCode::Esc, KeyCode::Char('z')],
                vec![KeyCode::Tab, KeyCode::Char('/')],
                vec![KeyCode::Esc, KeyCode::Char('f'), KeyCode::Char('x')],
            ] {
                for k in keys {
                    hs.key(k);
                }
                screens.push(draw(&hs.app, w, h));
            }
            for s in &screens {
                no_secret(s);
                assert_eq!(s.lines().count(), usize::from(h));
            }
        }
    }

    /// Each pane and view at each size: what a user reads there.
    #[test]
    fn each_pane_and_view_reads_right_at_each_size() {
        use KeyCode::{Char, Tab};
        type Case = (
            &'static str,
            &'static [KeyCode],
            [&'static [&'static str]; 3],
        );
        // Texts expected at 20x5, 80x24 and 200x60.
        let cases: [Case; 6] = [
            (
                "table",
                &[],
                [
                    &["Packets", "   4"],
                    &[
                        "Packets 54/97",
                        "STREAM > localhost",
                        "AUTH PLAIN user=alice",
                        "Decoded",
                        "Bytes",
                    ],
                    &[
                        "STREAM < localhost, FEATURES",
                        "IQ(result) QUERY(jabber:iq:roster)",
                        "<stream:stream to='localhost'",
                    ],
                ],
            ),
            (
                "decoded",
                &[Tab, Char('z')],
                [
                    &["Decoded"],
                    &[
                        "Frame 4: 194 bytes",
                        "▼ STREAM > localhost",
                        "<stream:stream to='localhost'",
                    ],
                    &["Frame 4: 194 bytes on wire", "xmlns='jabber:client'"],
                ],
            ),
            (
                "bytes",
                &[Tab, Tab, Char('z'), Char('g')],
                [
                    &["Bytes"],
                    &["Bytes (194 captured", "0000  00 00 00 00", "<stream:stream"],
                    &["0000  00 00 00 00", "0070  "],
                ],
            ),
            (
                "follow",
                &[Char('F')],
                [
                    &["Follow"],
                    &["Follow flow 0", "C→S STREAM > localhost", "S→C SUCCESS"],
                    &[
                        "C→S AUTH PLAIN user=alice",
                        "S→C PRESENCE < alice@localhost/balcony away \"in a meeting\"",
                    ],
                ],
            ),
            (
                "flows",
                &[Char('c')],
                [
                    &["Flows"],
                    &["Flows (2)", "127.0.0.1:5222", "online (alice)"],
                    &["XMPP", "online (bob)", "alice@localhost/balcony"],
                ],
            ),
            (
                "help",
                &[Char('?')],
                [
                    &["Keys"],
                    &["Keys · any key closes", "search Info and XML", "quit"],
                    &["follow the flow", "suspend (fg to resume)"],
                ],
            ),
        ];
        for (name, keys, wants) in cases {
            for (i, (w, h)) in SIZES.into_iter().enumerate() {
                let mut hs = at(w, h);
                for k in keys {
                    hs.key(*k);
                }
                let s = draw(&hs.app, w, h);
                no_secret(&s);
                if i == 0 {
                    // 1x1: one cell, no panic.
                    assert_eq!(s.chars().filter(|c| *c != '\n').count(), 1, "{name}");
                    continue;
                }
                for want in wants.get(i - 1).copied().unwrap_or_default() {
                    assert!(
                        s.contains(want),
                        "{name} at {w}x{h}: {want:?} missing in\n{s}"
                    );
                }
            }
        }
    }

    #[test]
    fn table_at_80x24() {
        let h = at(80, 24);
        let s = draw(&h.app, 80, 24);
        let lines: Vec<&str> = s.lines().collect();
        assert!(lines[0].contains("xmppscope"), "{s}");
        assert!(lines[0].contains("prosody-plain-signin-chat.pcap"), "{s}");
        assert!(s.contains("No.") && s.contains("Info"), "{s}");
        // The first rows as tshark shows them.
        let row4 = lines
            .iter()
            .find(|l| l.trim_start().starts_with("4 "))
            .unwrap();
        assert!(
            row4.contains("XMPP") && row4.contains("STREAM > localhost"),
            "{row4}"
        );
        assert!(s.contains("AUTH PLAIN user=alice"), "{s}");
        assert!(
            lines[23].contains("help") && lines[23].contains("quit"),
            "{s}"
        );
        // Decoded pane: the first stream header's XML.
        assert!(s.contains("Decoded"), "{s}");
        assert!(s.contains("<stream:stream"), "{s}");
        assert!(s.contains("Bytes"), "{s}");
    }

    /// Names learnt from the capture (here the streams' domains) replace
    /// addresses, as in tshark; `-n` keeps the addresses.
    #[test]
    fn source_and_destination_show_names_unless_n() {
        let mut h = at(200, 30);
        let row = |s: &str| {
            s.lines()
                .find(|l| l.contains("AUTH PLAIN user=alice"))
                .unwrap()
                .to_owned()
        };
        let s = draw(&h.app, 200, 30);
        assert!(row(&s).contains("localhost   localhost"), "{s}");
        assert!(!row(&s).contains("127.0.0.1"), "{s}");
        h.app.resolve_names = false;
        let s = draw(&h.app, 200, 30);
        assert!(row(&s).contains("127.0.0.1   127.0.0.1"), "{s}");
    }

    #[test]
    fn auth_packet_shows_masked_xml_and_bytes() {
        for (w, hgt) in [(80, 24), (200, 60)] {
            let mut h = at(w, hgt);
            h.key(KeyCode::Down);
            h.key(KeyCode::Down);
            assert_eq!(h.info(), "AUTH PLAIN user=alice");
            let s = draw(&h.app, w, hgt);
            no_secret(&s);
            assert!(
                s.contains(r#"<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">"#),
                "{s}"
            );
            assert!(s.contains("[masked: use --show-secrets]"), "{s}");
            assert!(s.contains("secret masked"), "{s}");
            // The bytes pane starts at the TCP payload: `<auth` in hex.
            assert!(s.contains("3c 61 75 74 68"), "{s}");
            // Zoomed bytes pane shows the whole frame, still masked.
            h.key(KeyCode::Tab);
            h.key(KeyCode::Tab);
            h.key(KeyCode::Char('z'));
            let s = draw(&h.app, w, hgt);
            no_secret(&s);
            assert!(s.contains("secret masked"), "{s}");
            assert!(s.contains("** ** **"), "{s}");
            // The decoded details: the user named, the password masked.
            h.key(KeyCode::BackTab);
            let s = draw(&h.app, w, hgt);
            assert!(s.contains("authcid: alice"), "{s}");
            assert!(s.contains("password: [masked: use --show-secrets]"), "{s}");
            no_secret(&s);
            h.key(KeyCode::Tab);
            assert!(s.contains("<auth xmlns=\"u"), "{s}");
            h.key(KeyCode::Char('g'));
            let s = draw(&h.app, w, hgt);
            assert!(s.contains("0000  00 00 00"), "{s}");
        }
    }

    #[test]
    fn a_known_stanza_pretty_printed() {
        let mut h = at(200, 60);
        h.key(KeyCode::Char('/'));
        h.typ("Hi Bob");
        h.key(KeyCode::Enter);
        assert_eq!(h.app.selected_row(), Some(50));
        let s = draw(&h.app, 200, 60);
        assert!(s.contains("<message"), "{s}");
        assert!(
            s.contains(r#"<message type="chat" to="bob@localhost" id="alice-7" xml:lang="en">"#),
            "{s}"
        );
        assert!(s.contains("    </message>"), "{s}");
        assert!(
            s.contains("<body>Hi Bob! Are you free for lunch today?</body>"),
            "{s}"
        );
        assert!(
            s.contains(r#"<active xmlns="http://jabber.org/protocol/chatstates"/>"#),
            "{s}"
        );
        assert!(s.contains("/Hi Bob/ 2 matches"), "{s}");
    }

    #[test]
    fn small_sizes_show_something_useful() {
        let h = at(20, 5);
        let s = draw(&h.app, 20, 5);
        let lines: Vec<&str> = s.lines().collect();
        assert!(lines[0].starts_with(" xmppscope"), "{s}");
        assert!(s.contains("Packets"), "{s}");
        assert!(lines[3].contains('4'), "first XMPP row:\n{s}");
        let h = at(1, 1);
        let s = draw(&h.app, 1, 1);
        assert_eq!(s.chars().filter(|c| *c != '\n').count(), 1);
    }

    #[test]
    fn follow_and_flows_screens() {
        let mut h = at(200, 60);
        h.key(KeyCode::Char('F'));
        let s = draw(&h.app, 200, 60);
        assert!(s.contains("Follow flow 0"), "{s}");
        assert!(s.contains("C→S STREAM > localhost"), "{s}");
        assert!(s.contains("S→C SUCCESS"), "{s}");
        assert!(
            s.contains(
                "C→S MESSAGE > bob@localhost: Hi Bob! Are you free for lunch today? [active]"
            ),
            "{s}"
        );
        no_secret(&s);
        let s = draw(&h.app, 80, 24);
        assert!(s.contains("Follow flow 0"), "{s}");
        h.key(KeyCode::Esc);
        h.key(KeyCode::Char('c'));
        let s = draw(&h.app, 200, 60);
        assert!(s.contains("Flows (2)"), "{s}");
        assert!(s.contains("XMPP"), "{s}");
        assert!(s.contains(":5222"), "{s}");
        assert!(s.contains("online (alice)"), "{s}");
        assert!(s.contains("online (bob)"), "{s}");
        assert!(s.contains("alice@localhost/balcony"), "{s}");
        let s = draw(&h.app, 80, 24);
        assert!(s.contains("Flow"), "{s}");
    }

    #[test]
    fn starttls_capture_decodes_tls_records() {
        const TLS: &str = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/captures/prosody-starttls-signin.pcap"
        );
        let mut h = Harness::open(TLS, (200, 60), Theme { color: true });
        h.key(KeyCode::Char('/'));
        h.typ("Client Hello");
        h.key(KeyCode::Enter);
        assert!(
            h.info().starts_with("Client Hello (SNI=localhost)"),
            "{}",
            h.info()
        );
        let s = draw(&h.app, 200, 60);
        assert!(s.contains("TLS "), "{s}");
        assert!(s.contains("▼ Client Hello (SNI=localhost)"), "{s}");
        assert!(s.contains("sni: localhost"), "{s}");
        assert!(s.contains("supported_versions: [TLSv1.3, TLSv1.2]"), "{s}");
        h.key(KeyCode::Char('F'));
        let s = draw(&h.app, 200, 60);
        assert!(s.contains("C→S STARTTLS"), "{s}");
        assert!(s.contains("S→C PROCEED"), "{s}");
        assert!(s.contains("C→S Client Hello (SNI=localhost)"), "{s}");
        h.key(KeyCode::Esc);
        h.key(KeyCode::Char('c'));
        let s = draw(&h.app, 200, 60);
        assert!(s.contains("XMPP+TLS"), "{s}");
        assert!(s.contains("tls, closed"), "{s}");
        no_secret(&s);
    }

    #[test]
    fn keylog_decrypts_and_still_masks() {
        const TLS: &str = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/captures/prosody-starttls-signin.pcap"
        );
        let keys = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/captures/prosody-starttls-signin.keys"
        ));
        let cfg = crate::dissect::Config {
            keylog: Some(std::sync::Arc::new(
                crate::keylog::KeyLog::open(keys).unwrap(),
            )),
            ..crate::dissect::Config::default()
        };
        let mut h = Harness::open_with(TLS, (200, 60), Theme { color: true }, cfg);
        h.key(KeyCode::Char('/'));
        h.typ("AUTH PLAIN");
        h.key(KeyCode::Enter);
        assert_eq!(h.info(), "AUTH PLAIN user=alice");
        let s = draw(&h.app, 200, 60);
        assert!(s.contains("(decrypted TLS)"), "{s}");
        // The table marks decrypted rows with a lock; plaintext rows have none.
        assert!(
            s.lines()
                .any(|l| l.contains("XMPP🔒") && l.contains("AUTH PLAIN")),
            "{s}"
        );
        assert!(
            s.lines()
                .any(|l| l.contains("STARTTLS") && !l.contains('🔒')),
            "{s}"
        );
        assert!(s.contains("[masked: use --show-secrets]"), "{s}");
        assert!(
            !s.contains("secret masked"),
            "ciphertext is not masked:\n{s}"
        );
        no_secret(&s);
        h.key(KeyCode::Char('F'));
        let s = draw(&h.app, 200, 60);
        assert!(s.contains("C→S AUTH PLAIN user=alice"), "{s}");
        assert!(s.contains("Hi Bob! Are you free for lunch today?"), "{s}");
        no_secret(&s);
        h.key(KeyCode::Esc);
        h.key(KeyCode::Char('c'));
        let s = draw(&h.app, 200, 60);
        assert!(s.contains("online (alice), closed"), "{s}");
    }

    #[test]
    fn help_lists_every_key() {
        let mut h = at(200, 60);
        h.key(KeyCode::Char('?'));
        let s = draw(&h.app, 200, 60);
        for (k, what) in KEYS {
            assert!(s.contains(k), "{k} missing:\n{s}");
            assert!(s.contains(what), "{what} missing:\n{s}");
        }
    }

    #[test]
    fn filter_bar_validates_live() {
        let mut h = at(100, 30);
        h.key(KeyCode::Char('f'));
        h.typ("host 1.2.3");
        let s = draw(&h.app, 100, 30);
        assert!(s.contains("✗ host: \"1.2.3\" is not an IP address"), "{s}");
        h.typ(".4");
        let s = draw(&h.app, 100, 30);
        assert!(s.contains("✓ valid"), "{s}");
        h.key(KeyCode::Enter);
        let s = draw(&h.app, 100, 30);
        assert!(s.contains("no packets match"), "{s}");
        assert!(s.contains("filter: host 1.2.3.4"), "{s}");
    }

    #[test]
    fn colours_and_no_color() {
        let h = at(100, 30);
        let mut term = Terminal::new(TestBackend::new(100, 30)).unwrap();
        term.draw(|f| view(&h.app, f)).unwrap();
        let buf = term.backend().buffer().clone();
        // Row of frame 8 (AUTH) is in the SASL colour, frame 16 in presence's.
        let find = |needle: &str| {
            (0..buf.area.height)
                .find(|y| {
                    let line: String = (0..buf.area.width).map(|x| buf[(x, *y)].symbol()).collect();
                    line.contains(needle)
                })
                .unwrap()
        };
        let t = Theme { color: true };
        let y = find("AUTH PLAIN");
        assert_eq!(buf[(10, y)].fg, t.cat(Cat::Sasl).fg.unwrap());
        let y = find("IQ(get) QUERY");
        assert_eq!(buf[(10, y)].fg, t.cat(Cat::Iq).fg.unwrap());
        let y = find("STREAM > localhost");
        assert_eq!(buf[(10, y)].fg, t.cat(Cat::Stream).fg.unwrap());
        let plain = Harness::with((100, 30), Theme { color: false });
        let mut term = Terminal::new(TestBackend::new(100, 30)).unwrap();
        term.draw(|f| view(&plain.app, f)).unwrap();
        let buf = term.backend().buffer();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                let c = &buf[(x, y)];
                assert_eq!(c.fg, ratatui::style::Color::Reset, "colour at {x},{y}");
                assert_eq!(c.bg, ratatui::style::Color::Reset, "colour at {x},{y}");
            }
        }
    }

    #[test]
    fn live_status_line_shows_interface_filter_packets_and_drops() {
        let mut app = App::new(
            "/tmp/x/live.pcapng",
            Theme { color: true },
            false,
            (200, 10),
        );
        let mut live = crate::ui::loader::LiveStatus {
            interfaces: vec!["lo".into()],
            filter: crate::live::DEFAULT_FILTER.into(),
            savefile: Some("signin.pcapng".into()),
            stats: crate::live::InterfaceStats {
                received: Some(130),
                kernel_dropped: Some(0),
                if_dropped: Some(0),
                queue_dropped: 3,
                ..Default::default()
            },
            running: true,
        };
        app.progress = crate::ui::loader::Progress {
            packets: 128,
            live: Some(live.clone()),
            ..Default::default()
        };
        let s = draw(&app, 200, 10);
        let last = s.lines().last().unwrap();
        assert!(
            last.contains(&format!(
                "● Capturing on lo · filter '{}' · 128 packets · dropped: kernel 0, interface 0, xmppscope 3 · saving to signin.pcapng",
                crate::live::DEFAULT_FILTER
            )),
            "{s}"
        );
        assert!(s.lines().next().unwrap().contains("● live lo"), "{s}");
        assert!(s.contains("waiting for packets on lo"), "{s}");
        // Narrow: the short form still has all four.
        let s = draw(&app, 80, 10);
        let last = s.lines().last().unwrap();
        assert!(
            last.contains("● lo · 128 pkts · drops 0/0/3 · 'tcp port 5222 or tcp port 5223 or tcp"),
            "{s}"
        );
        // Drops are shown in the error colour.
        let mut term = Terminal::new(TestBackend::new(200, 10)).unwrap();
        term.draw(|f| view(&app, f)).unwrap();
        let wide = draw(&app, 200, 10);
        let wide = wide.lines().last().unwrap();
        let at = wide.find("128").unwrap();
        let x = u16::try_from(wide[..at].chars().count()).unwrap();
        let t = Theme { color: true };
        assert_eq!(term.backend().buffer()[(x, 9)].fg, t.error().fg.unwrap());
        // Stopped, temporary file, everything captured.
        live.running = false;
        live.savefile = None;
        live.filter = String::new();
        app.progress.live = Some(live);
        app.progress.done = true;
        let s = draw(&app, 200, 10);
        let last = s.lines().last().unwrap();
        assert!(
            last.contains("■ Capture on lo stopped · filter none (everything)"),
            "{s}"
        );
        assert!(last.contains("not saved (-w FILE)"), "{s}");
        assert!(s.lines().next().unwrap().contains("■ stopped lo"), "{s}");
        for (w, h) in [(1, 1), (20, 5)] {
            draw(&app, w, h);
        }
    }

    #[test]
    fn progress_gauge_while_loading() {
        let mut app = App::new("big.pcap", Theme { color: true }, false, (100, 10));
        app.progress = crate::ui::loader::Progress {
            bytes: 50_000_000,
            total: Some(200_000_000),
            packets: 150_000,
            elapsed: std::time::Duration::from_secs(1),
            ..Default::default()
        };
        let s = draw(&app, 100, 10);
        let last = s.lines().last().unwrap();
        assert!(
            last.contains("Loading 25% · 50.0/200.0 MB · 150000 packets · 150k pkt/s · 4s left"),
            "{s}"
        );
        assert!(s.contains("loading…"), "{s}");
        // The gauge: the first quarter of the line is filled.
        let mut term = Terminal::new(TestBackend::new(100, 10)).unwrap();
        term.draw(|f| view(&app, f)).unwrap();
        let buf = term.backend().buffer();
        let t = Theme { color: true };
        assert_eq!(buf[(10, 9)].fg, t.ok().fg.unwrap());
        assert_ne!(buf[(60, 9)].fg, t.ok().fg.unwrap());
    }

    #[test]
    fn wrap_keeps_indent_and_text() {
        let l = Line::from(vec![
            Span::raw("    "),
            Span::raw("abcdefghij"),
            Span::raw("klmnop"),
        ]);
        let w = wrap(l, 8);
        let texts: Vec<String> = w.iter().map(xml::plain).collect();
        assert_eq!(texts, vec!["    abcd", "    efgh", "    ijkl", "    mnop"]);
        let l = Line::from(vec![
            Span::raw("  <a b='1' c='2'>"),
            Span::raw(xml::MASK),
            Span::raw("</a>"),
        ]);
        let texts: Vec<String> = wrap(l, 30).iter().map(xml::plain).collect();
        assert_eq!(
            texts,
            vec![
                "  <a b='1' c='2'>",
                "  [masked: use --show-secrets]",
                "  </a>"
            ]
        );
        let texts: Vec<String> = wrap(Line::raw("one two three four"), 9)
            .iter()
            .map(xml::plain)
            .collect();
        assert_eq!(texts, vec!["one two ", "three ", "four"]);
        let w = wrap(Line::raw("🍟🍟🍟"), 1);
        assert_eq!(w.len(), 3);
    }

    #[test]
    fn event_bytes_are_found() {
        let frame = b"HDR<a>1</a><b>2</b>";
        assert_eq!(event_range(frame, &(3..19), "<b>2</b>"), Some(11..19));
        // An event that began in an earlier frame ends here.
        assert_eq!(event_range(frame, &(3..19), "<z>xx<a>1</a>"), Some(3..11));
        assert_eq!(event_range(frame, &(3..19), ""), None);
    }

    #[test]
    fn hex_dump_masks_and_marks() {
        let t = Theme { color: false };
        let secret = 6..12;
        let lines = hex_lines(
            b"<auth>SECRET</auth>",
            8,
            Some(&(0..19)),
            None,
            std::slice::from_ref(&secret),
            t,
        );
        let text: Vec<String> = lines.iter().map(xml::plain).collect();
        assert_eq!(text[0], "0000  3c 61 75 74  68 3e ** **  <auth>**");
        assert!(!text.join("\n").contains("SECRET"));
        assert!(!text.join("\n").contains("53 45"));
    }
}

#[cfg(test)]
mod bench {
    use super::*;
    use crate::dissect::Config;
    use crate::ui::app::{AppEvent, Command};
    use crate::ui::decode::Decoder;
    use crate::ui::loader;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;

    /// Figures for the notes: time to first screen, index bytes per packet,
    /// time to show a packet far into the file.
    /// `XMPPSCOPE_BENCH_PCAP=/tmp/x.pcap cargo test --release ui::view::bench -- --ignored --nocapture`
    #[test]
    #[ignore = "bench: needs XMPPSCOPE_BENCH_PCAP"]
    fn first_screen_and_index_size() {
        let Ok(path) = std::env::var("XMPPSCOPE_BENCH_PCAP") else {
            eprintln!("SKIPPED: set XMPPSCOPE_BENCH_PCAP to a capture");
            return;
        };
        let start = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            loader::load(
                &p,
                &Config::default(),
                None,
                &Arc::new(AtomicBool::new(false)),
                &mut |l| tx.send(l).is_ok(),
            );
        });
        let mut app = App::new(&path, Theme { color: true }, false, (200, 60));
        let mut term = Terminal::new(TestBackend::new(200, 60)).unwrap();
        let mut dec = Decoder::new(&path, 1, &Config::default());
        let mut first = None;
        for l in rx {
            app.update(AppEvent::Loaded(Box::new(l)));
            for c in app.take_commands() {
                if let Command::Detail(r) = c {
                    let d = dec.detail(&r);
                    app.update(AppEvent::Detail(d));
                }
            }
            if first.is_none() && !app.view.is_empty() {
                term.draw(|f| view(&app, f)).unwrap();
                first = Some(start.elapsed());
            }
        }
        let loaded = start.elapsed();
        let rows = app.index.len();
        let heap = app.index.heap_bytes();
        // parts() decompresses every block of Info text once.
        let t = Instant::now();
        let parts = app.index.parts();
        let unpack_all = t.elapsed();
        let last = u32::try_from(rows.saturating_sub(1)).unwrap_or(0);
        let t = Instant::now();
        let chain = app.index.flow_chain(last).len();
        let chain_time = t.elapsed();
        let view_bytes = app.view.capacity() * 4;
        // Jump to the last shown packet and draw it.
        let t = Instant::now();
        app.update(AppEvent::Key(ratatui::crossterm::event::KeyEvent::from(
            ratatui::crossterm::event::KeyCode::End,
        )));
        for c in app.take_commands() {
            if let Command::Detail(r) = c {
                let d = dec.detail(&r);
                app.update(AppEvent::Detail(d));
            }
        }
        term.draw(|f| view(&app, f)).unwrap();
        let jump = t.elapsed();
        // Draw a screen far back (cold text blocks), then Home.
        let t = Instant::now();
        app.update(AppEvent::Key(ratatui::crossterm::event::KeyEvent::from(
            ratatui::crossterm::event::KeyCode::Home,
        )));
        term.draw(|f| view(&app, f)).unwrap();
        let home = t.elapsed();
        // The Info column of every row, as the search of standard input
        // and the filter bar's free text read it.
        let t = Instant::now();
        let re = regex::Regex::new("no such text 12345").unwrap();
        let hits = (0..rows)
            .filter_map(|i| u32::try_from(i).ok())
            .filter(|i| re.is_match(&app.index.info(*i)))
            .count();
        let search = t.elapsed();
        let blocks = app.index.text_blocks_decompressed();
        let t = Instant::now();
        app.apply_filter("bob").unwrap();
        let filtered = app.view.len();
        let filter = t.elapsed();
        #[allow(clippy::cast_precision_loss)]
        let per = |b: usize| b as f64 / rows as f64;
        eprintln!(
            "capture {path}: {rows} packets\n\
             first screen after {:?}; loaded in {:?} ({:.0} packets/s)\n\
             index: {} bytes ({:.1} bytes/packet; packed row {} bytes), view {:.1} bytes/packet\n\
             parts per packet: rows {:.1}, Info text {:.1} (compressed from {:.1}), flows {:.1} ({} flows), other {:.1}\n\
             End + decode + draw: {:?}; Home + draw: {:?}\n\
             decompress all Info text: {unpack_all:?}; follow chain of the last row: {chain_time:?} ({chain} frames)\n\
             Info of every row against a regex: {:?} ({hits} hits; {blocks} text blocks decompressed so far); \
             filter `bob`: {:?} ({filtered} rows)",
            first.unwrap_or_default(),
            loaded,
            rows as f64 / loaded.as_secs_f64(),
            heap,
            per(heap),
            parts.rows / rows.max(1),
            per(view_bytes),
            per(parts.rows),
            per(parts.text),
            per(parts.text_raw),
            per(parts.flows),
            app.index.flow_count(),
            per(parts.other),
            jump,
            home,
            search,
            filter,
        );
    }
}

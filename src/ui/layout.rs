//! Where things go on the screen. Pure functions of the app state and the
//! terminal size, shared by drawing and by the mouse and scrolling code.

use ratatui::layout::{Constraint, Layout, Rect};

use super::app::{App, Pane, Screen};
use super::view;

/// The screen's regions (empty when not shown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Areas {
    /// The top line.
    pub title: Rect,
    /// Everything between the top and bottom lines.
    pub main: Rect,
    /// The bottom line (hints, input, progress).
    pub status: Rect,
    pub table: Rect,
    pub decoded: Rect,
    pub bytes: Rect,
}

/// Below this many rows the packets screen shows only the focused pane.
pub const MIN_SPLIT_HEIGHT: u16 = 9;

#[must_use]
pub fn areas(app: &App, area: Rect) -> Areas {
    let mut a = Areas::default();
    match area.height {
        0 => return a,
        1 => {
            a.status = area;
            return a;
        }
        2 => {
            a.title = Rect { height: 1, ..area };
            a.status = Rect {
                y: area.y + 1,
                height: 1,
                ..area
            };
            return a;
        }
        _ => {}
    }
    a.title = Rect { height: 1, ..area };
    a.status = Rect {
        y: area.y + area.height - 1,
        height: 1,
        ..area
    };
    a.main = Rect {
        y: area.y + 1,
        height: area.height - 2,
        ..area
    };
    if app.screen != Screen::Packets {
        return a;
    }
    if app.zoom || a.main.height < MIN_SPLIT_HEIGHT {
        match app.focus {
            Pane::Table => a.table = a.main,
            Pane::Decoded => a.decoded = a.main,
            Pane::Bytes => a.bytes = a.main,
        }
        return a;
    }
    let [t, d, b] = Layout::vertical(app.weights.map(Constraint::Fill)).areas(a.main);
    a.table = t;
    a.decoded = d;
    a.bytes = b;
    a
}

/// A pane without its title line.
#[must_use]
pub fn pane_body(r: Rect) -> Rect {
    if r.height == 0 {
        return r;
    }
    Rect {
        y: r.y + 1,
        height: r.height - 1,
        ..r
    }
}

/// The packet rows of the table pane (below its title and column header).
#[must_use]
pub fn table_body(r: Rect) -> Rect {
    pane_body(pane_body(r))
}

/// The rows of the follow and flows screens (below title and header).
#[must_use]
pub fn list_body(main: Rect) -> Rect {
    pane_body(pane_body(main))
}

/// Bytes per hex dump line that fit in `width`.
#[must_use]
pub fn bytes_per_line(width: u16) -> usize {
    match width {
        72.. => 16,
        39.. => 8,
        _ => 4,
    }
}

/// Lines of the decoded pane at its current width.
#[must_use]
pub fn decoded_line_count(app: &App) -> usize {
    let w = app.areas().decoded.width;
    view::decoded_text(app, w).lines.len()
}

/// The line where event `i`'s header is, at the decoded pane's width.
#[must_use]
pub fn event_header_line(app: &App, i: usize) -> Option<usize> {
    let w = app.areas().decoded.width;
    view::decoded_text(app, w).headers.get(i).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::theme::Theme;

    #[test]
    fn every_size_gets_sane_areas() {
        let mut app = App::new("x", Theme { color: false }, false, (0, 0));
        for (w, h) in [
            (0, 0),
            (1, 1),
            (20, 2),
            (20, 5),
            (80, 8),
            (80, 24),
            (200, 60),
        ] {
            for zoom in [false, true] {
                app.zoom = zoom;
                let area = Rect::new(0, 0, w, h);
                let a = areas(&app, area);
                for r in [a.title, a.main, a.status, a.table, a.decoded, a.bytes] {
                    assert!(
                        r.is_empty() || area.contains(r.as_position()),
                        "{r:?} in {area:?}"
                    );
                    assert!(r.bottom() <= area.bottom() && r.right() <= area.right());
                }
                if h >= 3 {
                    assert!(!a.table.is_empty());
                }
            }
        }
        app.zoom = false;
        let a = areas(&app, Rect::new(0, 0, 80, 24));
        assert_eq!(a.table.height + a.decoded.height + a.bytes.height, 22);
        assert!(a.table.height > a.bytes.height);
    }

    #[test]
    fn hex_widths() {
        assert_eq!(bytes_per_line(200), 16);
        assert_eq!(bytes_per_line(72), 16);
        assert_eq!(bytes_per_line(50), 8);
        assert_eq!(bytes_per_line(10), 4);
    }
}

//! Colours by meaning. With `NO_COLOR` set (<https://no-color.org>) only
//! bold, reverse and underline are used.

use ratatui::style::{Color, Modifier, Style};

use super::index::Cat;
use crate::model::Dir;

/// The styles the widgets use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    /// Colours unless `NO_COLOR` is set to a non-empty value.
    #[must_use]
    pub fn from_env() -> Self {
        Self {
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    /// An event category's colour (rows, transcript lines, event headers).
    #[must_use]
    pub fn cat(self, c: Cat) -> Style {
        match c {
            Cat::None => self.fg(Color::DarkGray),
            Cat::Other => self.fg(Color::Gray),
            Cat::Tls => self.fg(Color::Blue),
            Cat::Stream => self.fg(Color::Cyan),
            Cat::Iq => self.fg(Color::LightBlue),
            Cat::Presence => self.fg(Color::Green),
            Cat::Message => self.fg(Color::Yellow),
            Cat::Sasl => self.fg(Color::Magenta),
            Cat::Error => self.fg(Color::Red).add_modifier(Modifier::BOLD),
        }
    }

    /// The note marker for a severity (1 note, 2 warn, 3 error).
    #[must_use]
    pub fn note(self, sev: u8) -> Style {
        match sev {
            3 => self.fg(Color::Red).add_modifier(Modifier::BOLD),
            2 => self.fg(Color::LightRed),
            _ => self.fg(Color::LightYellow),
        }
    }

    #[must_use]
    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    #[must_use]
    pub fn header(self) -> Style {
        if self.color {
            Style::new()
                .fg(Color::Black)
                .bg(Color::Gray)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        }
    }

    #[must_use]
    pub fn title(self, focused: bool) -> Style {
        if focused {
            self.fg(Color::LightCyan)
                .add_modifier(Modifier::BOLD | Modifier::REVERSED)
        } else {
            self.fg(Color::Gray).add_modifier(Modifier::BOLD)
        }
    }

    #[must_use]
    pub fn bar(self) -> Style {
        if self.color {
            Style::new().fg(Color::White).bg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    #[must_use]
    pub fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }

    #[must_use]
    pub fn key(self) -> Style {
        self.fg(Color::LightCyan).add_modifier(Modifier::BOLD)
    }

    #[must_use]
    pub fn error(self) -> Style {
        self.fg(Color::LightRed).add_modifier(Modifier::BOLD)
    }

    #[must_use]
    pub fn ok(self) -> Style {
        self.fg(Color::LightGreen)
    }

    #[must_use]
    pub fn hit(self) -> Style {
        if self.color {
            Style::new().fg(Color::Black).bg(Color::LightYellow)
        } else {
            Style::new().add_modifier(Modifier::UNDERLINED | Modifier::BOLD)
        }
    }

    #[must_use]
    pub fn masked(self) -> Style {
        if self.color {
            Style::new()
                .fg(Color::Black)
                .bg(Color::LightMagenta)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }

    #[must_use]
    pub fn dir(self, d: Dir) -> Style {
        match d {
            Dir::ClientToServer => self.fg(Color::LightCyan),
            Dir::ServerToClient => self.fg(Color::LightYellow),
        }
    }

    // XML syntax.
    #[must_use]
    pub fn xml_punct(self) -> Style {
        self.fg(Color::DarkGray)
    }
    #[must_use]
    pub fn xml_tag(self) -> Style {
        self.fg(Color::LightBlue).add_modifier(Modifier::BOLD)
    }
    #[must_use]
    pub fn xml_attr(self) -> Style {
        self.fg(Color::Cyan)
    }
    #[must_use]
    pub fn xml_value(self) -> Style {
        self.fg(Color::LightGreen)
    }
    #[must_use]
    pub fn xml_text(self) -> Style {
        self.fg(Color::White)
    }
    #[must_use]
    pub fn xml_special(self) -> Style {
        self.fg(Color::Gray)
    }
    /// Chat states (XEP-0085): "is typing…", typing episodes.
    #[must_use]
    pub fn typing(self) -> Style {
        self.fg(Color::LightMagenta).add_modifier(Modifier::ITALIC)
    }

    /// A presence state (RFC 6121 §4.7.2.1 `show`, or unavailable).
    #[must_use]
    pub fn presence(self, show: &str) -> Style {
        match show {
            "available" | "chat" => self.fg(Color::LightGreen),
            "away" => self.fg(Color::Yellow),
            "xa" => self.fg(Color::LightRed),
            "dnd" => self.fg(Color::Red),
            _ => self.fg(Color::DarkGray),
        }
    }

    /// The TCP payload in the bytes pane.
    #[must_use]
    pub fn payload(self) -> Style {
        self.fg(Color::LightGreen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_keeps_modifiers_only() {
        let t = Theme { color: false };
        for c in Cat::ALL {
            assert_eq!(t.cat(c).fg, None);
            assert_eq!(t.cat(c).bg, None);
        }
        assert_eq!(t.header().bg, None);
        assert!(t.selected().add_modifier.contains(Modifier::REVERSED));
        let c = Theme { color: true };
        assert_ne!(c.cat(Cat::Message), c.cat(Cat::Presence));
        assert_ne!(c.dir(Dir::ClientToServer), c.dir(Dir::ServerToClient));
    }
}

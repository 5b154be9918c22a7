//! `--expert` / `-z expert`: the expert notes of a capture grouped by
//! severity (worst first) and kind, with counts and the first example of
//! each, like tshark's `-z expert`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::model::{Note, Severity};

/// One group of notes.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub severity: Severity,
    pub kind: String,
    pub count: u64,
    /// Frame of the first note of this kind (0: not tied to a frame).
    pub first_frame: u64,
    pub first_text: String,
}

/// Notes collected over a run.
#[derive(Debug, Clone, Default)]
pub struct Expert {
    groups: BTreeMap<(std::cmp::Reverse<Severity>, String), Group>,
}

impl Expert {
    pub fn add(&mut self, n: &Note, frame: u64) {
        let name = n.kind.name();
        let g = self
            .groups
            .entry((std::cmp::Reverse(n.severity), name.clone()))
            .or_insert_with(|| Group {
                severity: n.severity,
                kind: name,
                count: 0,
                first_frame: frame,
                first_text: n.text.clone(),
            });
        g.count += 1;
    }

    /// Groups, worst severity first, then by kind.
    #[must_use]
    pub fn groups(&self) -> Vec<&Group> {
        self.groups.values().collect()
    }

    #[must_use]
    pub fn total(&self) -> u64 {
        self.groups.values().map(|g| g.count).sum()
    }

    /// The report a person reads.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "Expert notes: {}", self.total());
        let mut last: Option<Severity> = None;
        for g in self.groups.values() {
            if last != Some(g.severity) {
                let n: u64 = self
                    .groups
                    .values()
                    .filter(|x| x.severity == g.severity)
                    .map(|x| x.count)
                    .sum();
                let _ = writeln!(s, "  {} ({n})", severity_name(g.severity));
                last = Some(g.severity);
            }
            let _ = writeln!(
                s,
                "    {:<28} {:>8}   first in frame {}: {}",
                g.kind, g.count, g.first_frame, g.first_text
            );
        }
        s
    }
}

#[must_use]
pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Chat => "chat",
        Severity::Note => "note",
        Severity::Warn => "warn",
        Severity::Error => "error",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::NoteKind;

    #[test]
    fn grouped_worst_first_with_counts() {
        let mut x = Expert::default();
        x.add(&Note::new(NoteKind::IqWithoutResponse, "a"), 3);
        x.add(&Note::new(NoteKind::StreamError, "b"), 5);
        x.add(&Note::new(NoteKind::IqWithoutResponse, "c"), 9);
        let g = x.groups();
        assert_eq!(g[0].kind, "stream_error");
        assert_eq!(g[1].count, 2);
        assert_eq!(g[1].first_frame, 3);
        let t = x.to_text();
        assert!(t.starts_with("Expert notes: 3\n  error (1)\n"), "{t}");
    }
}

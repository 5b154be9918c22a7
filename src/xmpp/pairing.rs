//! IQ request ↔ response pairing in one pass (RFC 6120 §8.2.3: an `iq` of
//! type `get` or `set` MUST be answered by a `result` or `error` with the
//! same `id`, sent back the other way).
//!
//! One table per flow, keyed by (direction of the request, id). The table
//! is bounded ([`MAX_PENDING_IQS`] by default, `--max-pending-iqs`): past it
//! the oldest request is forgotten and the caller notes the limit.

use std::collections::HashMap;

use crate::model::{Dir, Timestamp};

/// Default limit: unanswered requests remembered per flow.
pub const MAX_PENDING_IQS: usize = 4096;

/// A request waiting for its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub frame: u64,
    pub time: Timestamp,
    pub id: String,
    pub dir: Dir,
    /// What was asked, for the note if it stays unanswered (`IQ(get) PING`).
    pub what: String,
}

/// What an `iq` did to the table.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A request was recorded; `evicted` is the request forgotten to make room.
    Request { evicted: Option<Pending> },
    /// A response matched this request.
    Response { request: Pending },
    /// A response nobody asked for (or asked before the capture began).
    Unmatched,
    /// Not pairable: no id or an unknown type.
    Ignored,
}

type Requests = HashMap<String, (u64, Pending), foldhash::fast::RandomState>;

/// The pending requests of one flow.
#[derive(Debug, Clone, Default)]
pub struct IqTable {
    /// Per direction of the request ([`Dir::index`]): id → (arrival
    /// number, request). Looked up by `&str`: a response costs no
    /// allocation. foldhash, randomly seeded: ids are the peers' to choose,
    /// and a table holds at most `limit` of them.
    pending: [Requests; 2],
    /// Arrival counter, for forgetting the oldest and for the order of
    /// [`Self::drain`].
    order: u64,
}

impl IqTable {
    /// Feed one `iq` stanza (RFC 6120 §8.2.3). `what` is asked only of a
    /// request, which is kept.
    #[allow(clippy::too_many_arguments)]
    pub fn iq(
        &mut self,
        dir: Dir,
        typ: Option<&str>,
        id: Option<&str>,
        frame: u64,
        time: Timestamp,
        what: impl FnOnce() -> String,
        limit: usize,
    ) -> Outcome {
        let Some(id) = id else {
            return Outcome::Ignored;
        };
        match typ {
            Some("get" | "set") => {
                let mut evicted = None;
                let known = self
                    .pending
                    .get(dir.index())
                    .is_some_and(|m| m.contains_key(id));
                if !known && self.len() >= limit.max(1) {
                    // Forget the oldest request (a scan, only at the limit).
                    let oldest = self
                        .pending
                        .iter()
                        .enumerate()
                        .flat_map(|(d, m)| m.iter().map(move |(k, (n, _))| (*n, d, k)))
                        .min_by_key(|(n, _, _)| *n)
                        .map(|(_, d, k)| (d, k.clone()));
                    if let Some((d, k)) = oldest {
                        evicted = self
                            .pending
                            .get_mut(d)
                            .and_then(|m| m.remove(&k))
                            .map(|(_, p)| p);
                    }
                }
                self.order += 1;
                let request = Pending {
                    frame,
                    time,
                    id: id.to_owned(),
                    dir,
                    what: what(),
                };
                if let Some(m) = self.pending.get_mut(dir.index()) {
                    m.insert(id.to_owned(), (self.order, request));
                }
                Outcome::Request { evicted }
            }
            Some("result" | "error") => {
                match self
                    .pending
                    .get_mut(dir.other().index())
                    .and_then(|m| m.remove(id))
                {
                    Some((_, request)) => Outcome::Response { request },
                    None => Outcome::Unmatched,
                }
            }
            _ => Outcome::Ignored,
        }
    }

    /// The requests never answered, oldest first (end of flow or capture);
    /// requests of one frame in the order they came, not the table's
    /// random order (two in one frame came out either way, run to run).
    pub fn drain(&mut self) -> Vec<Pending> {
        let mut v: Vec<(u64, Pending)> = self
            .pending
            .iter_mut()
            .flat_map(|m| m.drain().map(|(_, p)| p))
            .collect();
        v.sort_by_key(|(n, p)| (p.frame, *n));
        v.into_iter().map(|(_, p)| p).collect()
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.pending.iter().map(Requests::len).sum()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pending.iter().all(Requests::is_empty)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const C: Dir = Dir::ClientToServer;
    const S: Dir = Dir::ServerToClient;

    fn ts(s: i64) -> Timestamp {
        Timestamp { secs: s, nanos: 0 }
    }

    /// Unanswered requests of one frame come out in the order they came
    /// (many ids, so that the table's order would differ somewhere).
    #[test]
    fn drain_keeps_the_order_within_a_frame() {
        let mut t = IqTable::default();
        let ids: Vec<String> = (0..50).map(|i| format!("id{}", 97 * i % 50)).collect();
        for (n, id) in ids.iter().enumerate() {
            let frame = 10 + n as u64 / 10;
            t.iq(C, Some("get"), Some(id), frame, ts(1), String::new, 100);
        }
        let got: Vec<String> = t.drain().into_iter().map(|p| p.id).collect();
        assert_eq!(got, ids);
    }

    #[test]
    fn pairs_by_id_and_direction() {
        let mut t = IqTable::default();
        assert!(matches!(
            t.iq(C, Some("get"), Some("a"), 1, ts(1), || "IQ(get)".into(), 10),
            Outcome::Request { evicted: None }
        ));
        // Same id from the other side is a different request.
        t.iq(
            S,
            Some("get"),
            Some("a"),
            2,
            ts(2),
            || "IQ(get) PING".into(),
            10,
        );
        // A result from the client answers the server's request.
        match t.iq(C, Some("result"), Some("a"), 3, ts(3), String::new, 10) {
            Outcome::Response { request } => assert_eq!(request.frame, 2),
            o => panic!("{o:?}"),
        }
        match t.iq(S, Some("error"), Some("a"), 4, ts(4), String::new, 10) {
            Outcome::Response { request } => assert_eq!(request.frame, 1),
            o => panic!("{o:?}"),
        }
        assert_eq!(
            t.iq(S, Some("result"), Some("a"), 5, ts(5), String::new, 10),
            Outcome::Unmatched
        );
        assert_eq!(
            t.iq(S, Some("result"), None, 5, ts(5), String::new, 10),
            Outcome::Ignored
        );
        assert!(t.is_empty());
    }

    #[test]
    fn bounded_with_oldest_evicted() {
        let mut t = IqTable::default();
        t.iq(C, Some("get"), Some("1"), 1, ts(1), String::new, 2);
        t.iq(C, Some("get"), Some("2"), 2, ts(1), String::new, 2);
        match t.iq(C, Some("get"), Some("3"), 3, ts(1), String::new, 2) {
            Outcome::Request { evicted: Some(p) } => assert_eq!(p.id, "1"),
            o => panic!("{o:?}"),
        }
        assert_eq!(t.len(), 2);
        let left: Vec<u64> = t.drain().iter().map(|p| p.frame).collect();
        assert_eq!(left, vec![2, 3]);
    }
}

//! Merging the frames of several capture threads into one stream in
//! timestamp order.
//!
//! Each interface delivers its own frames in order, but the threads race
//! each other on the channel. Frames wait here until every interface has
//! promised that nothing earlier is still on its way (its *watermark*, see
//! `source`), then leave oldest first. Equal timestamps keep arrival order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::model::Timestamp;

struct Entry<T> {
    ts: Timestamp,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.ts, self.seq) == (other.ts, other.seq)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.ts, self.seq).cmp(&(other.ts, other.seq))
    }
}

/// A min-heap of items by (timestamp, arrival).
pub struct Merger<T> {
    heap: BinaryHeap<Reverse<Entry<T>>>,
    seq: u64,
}

impl<T> Default for Merger<T> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<T> Merger<T> {
    pub fn push(&mut self, ts: Timestamp, item: T) {
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            ts,
            seq: self.seq,
            item,
        }));
    }

    /// The oldest item if it is not later than `watermark`.
    pub fn pop_ready(&mut self, watermark: Timestamp) -> Option<T> {
        if self.heap.peek().is_some_and(|Reverse(e)| e.ts <= watermark) {
            self.heap.pop().map(|Reverse(e)| e.item)
        } else {
            None
        }
    }

    /// The oldest item, whatever its time (at the end of the capture).
    pub fn pop(&mut self) -> Option<T> {
        self.heap.pop().map(|Reverse(e)| e.item)
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t(secs: i64, nanos: u32) -> Timestamp {
        Timestamp { secs, nanos }
    }

    #[test]
    fn releases_in_time_order_up_to_the_watermark() {
        let mut m = Merger::default();
        // Two interfaces' frames arriving interleaved out of time order.
        m.push(t(10, 500), "b1");
        m.push(t(10, 100), "a1");
        m.push(t(10, 900), "b2");
        m.push(t(10, 300), "a2");
        assert_eq!(m.pop_ready(t(10, 50)), None);
        let mut out = Vec::new();
        while let Some(x) = m.pop_ready(t(10, 600)) {
            out.push(x);
        }
        assert_eq!(out, ["a1", "a2", "b1"]);
        assert_eq!(m.len(), 1);
        assert_eq!(m.pop(), Some("b2"));
        assert!(m.is_empty());
    }

    #[test]
    fn equal_times_keep_arrival_order() {
        let mut m = Merger::default();
        for i in 0..100 {
            m.push(t(1, 0), i);
        }
        let out: Vec<i32> = std::iter::from_fn(|| m.pop_ready(t(1, 0))).collect();
        assert_eq!(out, (0..100).collect::<Vec<_>>());
    }
}

//! Per-direction TCP stream reassembly.
//!
//! A [`HalfStream`] receives the TCP segments of *one direction* of *one
//! connection* in capture order and hands the stream's bytes to a sink in
//! stream order, each byte exactly once — the behaviour of tshark with
//! `-o tcp.reassemble_out_of_order:TRUE`.
//!
//! # Sequence space (RFC 9293)
//!
//! * Sequence numbers are 32-bit and all comparisons are done modulo 2^32
//!   (RFC 9293 §3.4, "Sequence Numbers"). A segment is placed relative to the
//!   current delivery point with a signed 32-bit distance ([`SeqNum::diff`]),
//!   and turned into a `u64` stream offset, so streams longer than 4 GiB and
//!   sequence numbers wrapping past 2^32 are handled. A segment reaching more
//!   than 2^31 - 1 bytes ahead of the delivery point cannot be told apart from
//!   an old one; it is dropped with a [`StreamNoteKind::OutOfWindow`] note.
//! * "The SYN is considered to occur before the first actual data octet of the
//!   segment in which it occurs, while the FIN is considered to occur after the
//!   last actual data octet" (RFC 9293 §3.4). Hence the stream origin is
//!   `seq + 1` for a SYN and the FIN sits at `seq + SYN + wire_len`.
//! * "If a segment's contents straddle the boundary between old and new, only
//!   the new parts are processed", and "segments with higher beginning
//!   sequence numbers SHOULD be held for later processing" (RFC 9293
//!   §3.10.7.4, first check, SHLD-31). Held segments live in a bounded list
//!   of ranges ahead of the delivery point (the hole-list idea of smoltcp's
//!   assembler); a range becoming contiguous is delivered piece by piece,
//!   each piece with the frame that carried it.
//! * Once the FIN is known, later segment text "should not occur since a FIN
//!   has been received from the remote side. Ignore the segment text"
//!   (RFC 9293 §3.10.7.4, seventh check): such bytes are dropped and
//!   reported as [`StreamNoteKind::DataAfterFin`]. The Fin itself is
//!   delivered when the stream reaches it in order (eighth check).
//! * A keep-alive probe carries "SEG.SEQ = SND.NXT-1 and may or may not
//!   contain one garbage octet of data" (RFC 9293 §3.8.4): reported as
//!   [`StreamNoteKind::KeepAlive`], never compared or delivered.
//!
//! # Origin
//!
//! The first segment seen fixes the origin (offset 0). A capture that starts
//! mid-connection therefore cannot deliver bytes sent before its first
//! segment; they are treated as already delivered (retransmissions). If that
//! first segment happens to be a zero-length keep-alive (SND.NXT-1) the
//! origin is one byte early and the stream waits behind a one-byte hole until
//! a limit or [`HalfStream::flush`] gives it up. A new connection reusing the
//! 4-tuple (SYN after FIN/RST) needs a new `HalfStream`; that is the
//! caller's decision.
//!
//! # Overlaps
//!
//! When two copies of the same bytes differ, the copy seen first wins (as in
//! Wireshark's default); the difference is reported as
//! [`StreamNoteKind::OverlapConflict`]. Overlaps are checked against held
//! out-of-order data and against a window of the last
//! [`ReassemblyLimits::retx_compare_bytes`] delivered bytes.
//!
//! # Limits
//!
//! Held data is bounded by [`ReassemblyLimits::max_buffered_bytes`] and
//! [`ReassemblyLimits::max_holes`]. When storing a segment would exceed one of
//! them, the oldest hole is given up (reported as a [`StreamNoteKind`] note and
//! a [`Delivery::Gap`]) and the data behind it is delivered, until the segment
//! fits. Nothing is ever dropped silently.
//!
//! # Cost
//!
//! A segment that starts exactly at the delivery point while nothing is held
//! is delivered zero-copy (the sink receives a sub-slice of the caller's
//! payload) and without allocating. The only copying on that path is into the
//! fixed-capacity retransmission comparison window, allocated once in
//! [`HalfStream::new`]. Out-of-order data is copied into the hold list.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Add;

/// Wrapping 32-bit TCP sequence number (RFC 9293 §3.4: comparisons modulo 2^32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// `self + n` modulo 2^32.
    #[must_use]
    pub const fn wrapping_add(self, n: u32) -> Self {
        SeqNum(self.0.wrapping_add(n))
    }

    /// Signed distance `self - other` modulo 2^32, in `[-2^31, 2^31)`
    /// (RFC 9293 §3.4). Positive when `self` lies after `other`.
    #[must_use]
    pub const fn diff(self, other: SeqNum) -> i64 {
        // Reinterpreting the wrapped difference as i32 is the RFC's
        // "modulo 2^32" comparison.
        self.0.wrapping_sub(other.0) as i32 as i64
    }

    /// `self` comes strictly before `other` in sequence space (RFC 9293 §3.4 "<").
    #[must_use]
    pub const fn precedes(self, other: SeqNum) -> bool {
        self.diff(other) < 0
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;

    fn add(self, n: u32) -> SeqNum {
        self.wrapping_add(n)
    }
}

/// An acknowledgment more than this far past the delivery point is not
/// taken as evidence of unseen bytes (a corrupt or hostile ACK).
pub const MAX_ACK_SKIP: u32 = 1 << 30;

/// Named, configurable limits; hitting one is reported, never silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// Bytes held out of order per direction waiting for a hole to fill. Default 4 MiB.
    pub max_buffered_bytes: usize,
    /// Distinct held ranges (holes) per direction. Default 64.
    pub max_holes: usize,
    /// Bytes of recently delivered data kept to compare retransmissions against (0 = off). Default 1536, one full-size segment.
    pub retx_compare_bytes: usize,
}

impl ReassemblyLimits {
    /// Default for [`ReassemblyLimits::max_buffered_bytes`].
    pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 4 << 20;
    /// Default for [`ReassemblyLimits::max_holes`].
    pub const DEFAULT_MAX_HOLES: usize = 64;
    /// Default for [`ReassemblyLimits::retx_compare_bytes`].
    pub const DEFAULT_RETX_COMPARE_BYTES: usize = 1536;
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        ReassemblyLimits {
            max_buffered_bytes: Self::DEFAULT_MAX_BUFFERED_BYTES,
            max_holes: Self::DEFAULT_MAX_HOLES,
            retx_compare_bytes: Self::DEFAULT_RETX_COMPARE_BYTES,
        }
    }
}

/// What a [`Delivery::Note`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamNoteKind {
    /// Segment entirely already delivered or held (same bytes): dropped, counted.
    Retransmission,
    /// Overlapping bytes differ from what was delivered/held first (the first copy wins, as in Wireshark's default).
    OverlapConflict,
    /// Segment arrived ahead of a hole and was held.
    OutOfOrder,
    /// `max_buffered_bytes` would be exceeded: the oldest hole is skipped (reported as a Gap) so held data can be delivered.
    BufferLimit,
    /// `max_holes` exceeded: same remedy.
    HoleLimit,
    /// Payload beyond the FIN's sequence number.
    DataAfterFin,
    /// Captured payload shorter than the segment's real length (snaplen): the missing tail becomes a Gap.
    TruncatedSegment,
    /// Segment reaching 2^31 or more bytes past the delivery point: not
    /// comparable modulo 2^32 (RFC 9293 §3.4), dropped.
    OutOfWindow,
    /// Keep-alive probe (RFC 9293 §3.8.4): sequence number one before the
    /// delivery point, zero or one garbage octet. Dropped, not compared.
    KeepAlive,
}

/// One event handed to the sink.
#[derive(Debug)]
pub enum Delivery<'a> {
    /// In-order stream bytes. `frame` is the capture frame number that carried them (held data keeps its original frame).
    Data {
        bytes: &'a [u8],
        frame: u64,
        offset: u64,
    },
    /// `len` stream bytes will never be delivered (lost, truncated, or skipped to honour a limit); the next Data starts after them.
    Gap { len: u64, offset: u64 },
    /// The FIN's sequence number was reached in order: the direction is closed.
    Fin { frame: u64 },
    /// Something noteworthy about frame `frame`, concerning stream bytes `offset..offset + len`.
    Note {
        kind: StreamNoteKind,
        frame: u64,
        offset: u64,
        len: u64,
    },
}

/// A held range of the stream, strictly ahead of the delivery point.
#[derive(Debug)]
enum Piece {
    /// Captured out-of-order bytes and the frame that carried them.
    Bytes { data: Vec<u8>, frame: u64 },
    /// Bytes known to be on the wire but cut by the snaplen: delivered as a Gap.
    Missing { len: u64 },
}

impl Piece {
    fn len(&self) -> u64 {
        match self {
            Piece::Bytes { data, .. } => len64(data),
            Piece::Missing { len } => *len,
        }
    }
}

/// Reassembler for one direction of one TCP connection.
#[derive(Debug)]
pub struct HalfStream {
    limits: ReassemblyLimits,
    /// Sequence number of stream offset 0; fixed by the first segment.
    origin: Option<SeqNum>,
    /// Stream offset of the next byte to deliver.
    next: u64,
    /// Held ranges keyed by start offset; non-overlapping, every key > `next`.
    held: BTreeMap<u64, Piece>,
    /// Sum of held `Piece::Bytes` lengths.
    buffered: usize,
    /// Number of maximal contiguous runs in `held` (= holes before them).
    runs: usize,
    /// The last delivered bytes, ending at `next` (cleared at a Gap).
    recent: VecDeque<u8>,
    /// Stream offset of the FIN, once a FIN was seen.
    fin_offset: Option<u64>,
    fin_frame: u64,
    fin_seen: bool,
}

type Sink<'s> = dyn FnMut(Delivery<'_>) + 's;

impl HalfStream {
    /// A direction that has seen no segment yet.
    #[must_use]
    pub fn new(limits: ReassemblyLimits) -> Self {
        HalfStream {
            limits,
            origin: None,
            next: 0,
            held: BTreeMap::new(),
            buffered: 0,
            runs: 0,
            // Grown on first use (up to `retx_compare_bytes`), so that the
            // many flows that never carry data cost nothing.
            recent: VecDeque::new(),
            fin_offset: None,
            fin_frame: 0,
            fin_seen: false,
        }
    }

    /// The limits this stream was created with.
    #[must_use]
    pub fn limits(&self) -> ReassemblyLimits {
        self.limits
    }

    /// Sequence number of stream offset 0, once the first segment was seen.
    #[must_use]
    pub fn origin(&self) -> Option<SeqNum> {
        self.origin
    }

    /// Stream offset of the next byte to deliver (bytes delivered + gap bytes since origin).
    #[must_use]
    pub fn delivered_offset(&self) -> u64 {
        self.next
    }

    /// Held out-of-order bytes. The retransmission comparison window is not
    /// counted: it is a fixed allocation of `retx_compare_bytes`.
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Distinct held ranges, each waiting behind a hole.
    #[must_use]
    pub fn holes(&self) -> usize {
        self.runs
    }

    /// The FIN was delivered in order.
    #[must_use]
    pub fn fin_seen(&self) -> bool {
        self.fin_seen
    }

    /// One segment, in capture order. `payload` is the captured payload;
    /// `wire_len` its real length from the IP header (>= `payload.len()`;
    /// larger when the snaplen cut it). Captured bytes beyond `wire_len` are
    /// link-layer padding and ignored.
    ///
    /// The first segment seen fixes the stream origin: `seq + 1` with SYN
    /// (the SYN occupies one sequence number, RFC 9293 §3.4), `seq` without
    /// (capture started mid-connection). Later SYN flags only shift where the
    /// segment's data starts; they never move the origin.
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        seq: u32,
        syn: bool,
        fin: bool,
        payload: &[u8],
        wire_len: usize,
        frame: u64,
        sink: &mut dyn FnMut(Delivery<'_>),
    ) {
        let payload = payload.get(..wire_len).unwrap_or(payload);
        let data_seq = SeqNum(seq).wrapping_add(u32::from(syn));
        let origin = *self.origin.get_or_insert(data_seq);
        let next = self.next;
        // Truncation to u32 is the point: sequence numbers are offsets mod 2^32.
        let next_seq = origin.wrapping_add(next as u32);
        let rel = data_seq.diff(next_seq);

        // Keep-alive probe: "SEG.SEQ = SND.NXT-1 and may or may not contain
        // one garbage octet" (RFC 9293 §3.8.4). Not a retransmission, and its
        // octet is not compared: it is garbage by design.
        if rel == -1 && wire_len <= 1 && !syn && !fin {
            sink(Delivery::Note {
                kind: StreamNoteKind::KeepAlive,
                frame,
                offset: next.saturating_sub(1),
                len: wire_len as u64,
            });
            return;
        }

        // Fast path: in order, nothing held, nothing special. Zero-copy.
        if rel == 0
            && !fin
            && self.held.is_empty()
            && self.fin_offset.is_none()
            && payload.len() == wire_len
            && wire_len > 0
            && wire_len <= i32::MAX as usize
        {
            self.deliver(payload, frame, sink);
            return;
        }

        // Offsets in i128: the start may lie before the origin (negative).
        let start = i128::from(next) + i128::from(rel);
        let seg_end = start + wire_len as i128; // also the FIN's offset
        if seg_end - i128::from(next) > i128::from(i32::MAX) || seg_end > i128::from(u64::MAX) {
            sink(Delivery::Note {
                kind: StreamNoteKind::OutOfWindow,
                frame,
                offset: clamp(start),
                len: wire_len as u64,
            });
            return;
        }

        let mut end = seg_end;
        let mut fresh = false; // the segment contributed something new
        let mut quiet = false; // already reported: no Retransmission note

        // FIN handling (RFC 9293 §3.4, §3.10.7.4 eighth check).
        match self.fin_offset {
            Some(f) => {
                let f = i128::from(f);
                // A bare ACK after the FIN sits at FIN + 1 with no data:
                // nothing lies past the FIN then.
                if end > f && end > start.max(f) {
                    let from = start.max(f);
                    sink(Delivery::Note {
                        kind: StreamNoteKind::DataAfterFin,
                        frame,
                        offset: clamp(from),
                        len: clamp(end - from),
                    });
                    end = f;
                    quiet = true;
                }
                if fin && seg_end < f {
                    sink(Delivery::Note {
                        kind: StreamNoteKind::OverlapConflict,
                        frame,
                        offset: clamp(seg_end),
                        len: clamp(f - seg_end),
                    });
                    quiet = true;
                }
            }
            None if fin => {
                if seg_end < i128::from(next) {
                    // A FIN inside data already delivered: keep the data.
                    sink(Delivery::Note {
                        kind: StreamNoteKind::OverlapConflict,
                        frame,
                        offset: clamp(seg_end),
                        len: clamp(i128::from(next) - seg_end),
                    });
                    quiet = true;
                } else {
                    let f = clamp(seg_end);
                    self.fin_offset = Some(f);
                    self.fin_frame = frame;
                    fresh = true;
                    self.drop_held_after(f, frame, sink);
                }
            }
            None => {}
        }

        // Captured bytes cover [start, pay_end); [pay_end, end) was cut by the snaplen.
        let pay_end = (start + payload.len() as i128).min(end);
        if pay_end < end && end > i128::from(next) {
            let from = pay_end.max(i128::from(next));
            sink(Delivery::Note {
                kind: StreamNoteKind::TruncatedSegment,
                frame,
                offset: clamp(from),
                len: clamp(end - from),
            });
        }

        // Compare the already delivered part with the recent window, and the
        // part overlapping held data with that data. First copy wins.
        let mut conflict: Option<(u64, u64)> = None;
        let old_lo = clamp(start);
        let old_hi = clamp(pay_end.min(i128::from(next)));
        let win_start = next.saturating_sub(len64_deque(&self.recent));
        let cmp_lo = old_lo.max(win_start);
        if cmp_lo < old_hi {
            let ours = sub_slice(payload, start, cmp_lo, old_hi);
            let skip = to_usize(cmp_lo.saturating_sub(win_start));
            if let Some((x, y)) = diff_span(self.recent.iter().skip(skip), ours.iter()) {
                widen(
                    &mut conflict,
                    cmp_lo.saturating_add(x),
                    cmp_lo.saturating_add(y).saturating_add(1),
                );
            }
        }

        // The new part [ns, end); captured bytes end at pe.
        let ns = start.max(i128::from(next));
        let new_part = (ns < end).then(|| (clamp(ns), clamp(end), clamp(pay_end)));
        if let Some((ns, _, pe)) = new_part
            && ns < pe
        {
            self.compare_held(payload, start, ns, pe, &mut conflict);
        }
        if let Some((lo, hi)) = conflict {
            sink(Delivery::Note {
                kind: StreamNoteKind::OverlapConflict,
                frame,
                offset: lo,
                len: hi.saturating_sub(lo),
            });
            quiet = true;
        }
        if let Some((ns, end, pe)) = new_part {
            fresh |= self.place(payload, start, ns, pe, end, frame, sink);
        }

        self.reach_fin(sink);

        if !fresh && !quiet && (wire_len > 0 || fin) {
            sink(Delivery::Note {
                kind: StreamNoteKind::Retransmission,
                frame,
                offset: clamp(start),
                len: wire_len as u64,
            });
        }
    }

    /// Whether an ACK of `ack` acknowledges bytes of this direction that
    /// were never delivered, so that [`Self::acked`] has something to do
    /// (most ACKs acknowledge what was seen: the caller skips the call).
    #[must_use]
    pub fn acks_unseen(&self, ack: u32) -> bool {
        self.ack_target(ack).is_some()
    }

    /// The stream offset an ACK of `ack` moves delivery to, when it lies
    /// beyond what was delivered (and not absurdly far: [`MAX_ACK_SKIP`]).
    fn ack_target(&self, ack: u32) -> Option<u64> {
        let origin = self.origin?;
        // The delivery point in sequence space; offsets are taken modulo
        // 2^32 on purpose (the truncation is the wrap-around).
        #[allow(clippy::cast_possible_truncation)]
        let next_seq = origin.wrapping_add(self.next as u32);
        let ahead = SeqNum(ack).diff(next_seq);
        // Nothing unseen, or an ACK so far ahead it is nonsense.
        if ahead <= 0 || ahead > i64::from(MAX_ACK_SKIP) {
            return None;
        }
        let mut target = self.next.saturating_add(ahead.unsigned_abs());
        if let Some(f) = self.fin_offset {
            // The FIN takes one sequence number of its own.
            target = target.min(f);
        }
        (target > self.next).then_some(target)
    }

    /// The peer acknowledged this direction's bytes up to sequence number
    /// `ack` (RFC 9293 §3.4: ACK is the next sequence number the receiver
    /// expects). When that lies beyond what was delivered, the bytes in
    /// between reached the peer but not the capture (Wireshark's "ACKed
    /// unseen segment"): they will never be captured, so the holes below
    /// `ack` become Gaps at once and the held data below it is delivered,
    /// instead of waiting for a limit or the end of the capture. Returns
    /// true when unseen bytes were acknowledged.
    pub fn acked(&mut self, ack: u32, sink: &mut Sink<'_>) -> bool {
        let Some(target) = self.ack_target(ack) else {
            return false;
        };
        while self.next < target {
            match self.held.first_key_value() {
                Some((&first, _)) if first < target => {
                    self.gap(first.saturating_sub(self.next), sink);
                    let before = self.next;
                    self.drain(sink);
                    if self.next == before {
                        break;
                    }
                }
                _ => self.gap(target.saturating_sub(self.next), sink),
            }
        }
        self.reach_fin(sink);
        true
    }

    /// Give up on every hole: deliver all held data in order with Gaps for
    /// the missing parts (called at RST, at end of capture, on idle
    /// eviction). If a FIN is known, the bytes up to it become a Gap and the
    /// Fin is delivered.
    pub fn flush(&mut self, sink: &mut dyn FnMut(Delivery<'_>)) {
        while let Some((&first, _)) = self.held.first_key_value() {
            let before = self.held.len();
            self.gap(first.saturating_sub(self.next), sink);
            self.drain(sink);
            if self.held.len() == before {
                break; // no progress: cannot happen while invariants hold
            }
        }
        if let Some(f) = self.fin_offset
            && !self.fin_seen
        {
            self.gap(f.saturating_sub(self.next), sink);
        }
        self.reach_fin(sink);
    }

    /// Recompute every cached quantity from scratch and check the hold-list
    /// invariants (tests only).
    #[cfg(test)]
    fn check_invariants(&self) -> Result<(), String> {
        let mut buffered = 0usize;
        let mut runs = 0usize;
        let mut prev: Option<(u64, bool)> = None; // (end, was Missing)
        for (&s, p) in &self.held {
            if s <= self.next {
                return Err(format!("piece at {s} not ahead of next {}", self.next));
            }
            if p.len() == 0 {
                return Err(format!("empty piece at {s}"));
            }
            let missing = matches!(p, Piece::Missing { .. });
            match prev {
                Some((e, _)) if e > s => return Err(format!("overlap at {s}")),
                Some((e, true)) if e == s && missing => {
                    return Err(format!("unmerged Missing at {s}"));
                }
                Some((e, _)) if e == s => {}
                _ => runs += 1,
            }
            if let Piece::Bytes { data, .. } = p {
                buffered += data.len();
            }
            prev = Some((s + p.len(), missing));
        }
        if let (Some(f), Some((e, _))) = (self.fin_offset, prev)
            && e > f
        {
            return Err(format!("held data up to {e} beyond FIN {f}"));
        }
        if buffered != self.buffered || runs != self.runs {
            return Err(format!(
                "cached buffered/runs {}/{} != actual {buffered}/{runs}",
                self.buffered, self.runs
            ));
        }
        if self.recent.len() > self.limits.retx_compare_bytes {
            return Err("retransmission window too long".into());
        }
        Ok(())
    }

    /// Compare our bytes `[ns, pe)` with overlapping held bytes.
    fn compare_held(
        &self,
        payload: &[u8],
        start: i128,
        ns: u64,
        pe: u64,
        conflict: &mut Option<(u64, u64)>,
    ) {
        let lo = match self.held.range(..=ns).next_back() {
            Some((&s, p)) if s.saturating_add(p.len()) > ns => s,
            _ => ns,
        };
        for (&s, p) in self.held.range(lo..pe) {
            if let Piece::Bytes { data, .. } = p {
                let a = s.max(ns);
                let b = s.saturating_add(len64(data)).min(pe);
                if a < b {
                    let theirs = data
                        .get(to_usize(a.saturating_sub(s))..to_usize(b.saturating_sub(s)))
                        .unwrap_or_default();
                    let ours = sub_slice(payload, start, a, b);
                    if let Some((x, y)) = diff_span(theirs.iter(), ours.iter()) {
                        widen(
                            conflict,
                            a.saturating_add(x),
                            a.saturating_add(y).saturating_add(1),
                        );
                    }
                }
            }
        }
    }

    /// Deliver or hold the not-yet-covered parts of `[ns, end)`; captured
    /// bytes are `[start, pe)` of `payload`, the rest is missing. Returns
    /// whether anything was delivered or held.
    #[allow(clippy::too_many_arguments)]
    fn place(
        &mut self,
        payload: &[u8],
        start: i128,
        ns: u64,
        pe: u64,
        end: u64,
        frame: u64,
        sink: &mut Sink<'_>,
    ) -> bool {
        let mut placed = false;
        let mut noted = false;
        let mut c = ns;
        while c < end {
            c = c.max(self.next);
            if c >= end {
                break;
            }
            // Inside a held piece: that copy came first.
            if let Some((&s, p)) = self.held.range(..=c).next_back() {
                let e = s.saturating_add(p.len());
                if e > c {
                    c = e;
                    continue;
                }
            }
            // Free space [c, f).
            let f = self
                .held
                .range(c..)
                .next()
                .map_or(end, |(&s, _)| s.min(end));
            let (b, is_bytes) = if c < pe {
                (f.min(pe), true)
            } else {
                (f, false)
            };
            if c != self.next && self.make_room(c, b, is_bytes, frame, sink) {
                if !noted {
                    noted = true;
                    sink(Delivery::Note {
                        kind: StreamNoteKind::OutOfOrder,
                        frame,
                        offset: ns,
                        len: end.saturating_sub(ns),
                    });
                }
                let piece = if is_bytes {
                    Piece::Bytes {
                        data: sub_slice(payload, start, c, b).to_vec(),
                        frame,
                    }
                } else {
                    Piece::Missing {
                        len: b.saturating_sub(c),
                    }
                };
                self.insert_piece(c, piece);
            } else {
                if is_bytes {
                    self.deliver(sub_slice(payload, start, c, b), frame, sink);
                } else {
                    self.gap(b.saturating_sub(c), sink);
                }
                self.drain(sink);
            }
            placed = true;
            c = b;
        }
        placed
    }

    /// Make room to hold `[c, b)` (`c > next`). Returns `false` when honouring
    /// a limit moved the delivery point up to `c`: deliver directly instead.
    fn make_room(
        &mut self,
        c: u64,
        b: u64,
        is_bytes: bool,
        frame: u64,
        sink: &mut Sink<'_>,
    ) -> bool {
        loop {
            if self.next >= c {
                return false;
            }
            let n = to_usize(b.saturating_sub(c));
            let over_bytes =
                is_bytes && self.buffered.saturating_add(n) > self.limits.max_buffered_bytes;
            let new_run = !(self.ends_at(c) || self.held.contains_key(&b));
            let over_holes = new_run && self.runs >= self.limits.max_holes;
            if !over_bytes && !over_holes {
                return true;
            }
            // Skip the oldest hole: the one before the first held range, or
            // the one before `c` itself when nothing earlier is held.
            let target = self.held.first_key_value().map_or(c, |(&s, _)| s.min(c));
            let kind = if over_bytes {
                StreamNoteKind::BufferLimit
            } else {
                StreamNoteKind::HoleLimit
            };
            sink(Delivery::Note {
                kind,
                frame,
                offset: self.next,
                len: target.saturating_sub(self.next),
            });
            self.gap(target.saturating_sub(self.next), sink);
            self.drain(sink);
        }
    }

    /// Forget held data at or past the FIN at `f`.
    fn drop_held_after(&mut self, f: u64, frame: u64, sink: &mut Sink<'_>) {
        let mut dropped = 0u64;
        while let Some((&s, p)) = self.held.last_key_value() {
            let e = s.saturating_add(p.len());
            if e <= f {
                break;
            }
            let Some(piece) = self.remove_piece(s) else {
                break;
            };
            if s >= f {
                dropped = dropped.saturating_add(piece.len());
                continue;
            }
            dropped = dropped.saturating_add(e.saturating_sub(f));
            let keep = f.saturating_sub(s);
            let piece = match piece {
                Piece::Bytes { mut data, frame } => {
                    data.truncate(to_usize(keep));
                    Piece::Bytes { data, frame }
                }
                Piece::Missing { .. } => Piece::Missing { len: keep },
            };
            self.insert_piece(s, piece);
            break;
        }
        if dropped > 0 {
            sink(Delivery::Note {
                kind: StreamNoteKind::DataAfterFin,
                frame,
                offset: f,
                len: dropped,
            });
        }
    }

    /// Deliver every held piece that now starts at the delivery point.
    fn drain(&mut self, sink: &mut Sink<'_>) {
        while let Some((&s, _)) = self.held.first_key_value() {
            if s != self.next {
                break;
            }
            match self.remove_piece(s) {
                Some(Piece::Bytes { data, frame }) => self.deliver(&data, frame, sink),
                Some(Piece::Missing { len }) => self.gap(len, sink),
                None => break,
            }
        }
        self.reach_fin(sink);
    }

    fn reach_fin(&mut self, sink: &mut Sink<'_>) {
        if !self.fin_seen && self.fin_offset == Some(self.next) {
            self.fin_seen = true;
            sink(Delivery::Fin {
                frame: self.fin_frame,
            });
        }
    }

    fn deliver(&mut self, bytes: &[u8], frame: u64, sink: &mut Sink<'_>) {
        if bytes.is_empty() {
            return;
        }
        sink(Delivery::Data {
            bytes,
            frame,
            offset: self.next,
        });
        self.remember(bytes);
        self.next = self.next.saturating_add(len64(bytes));
    }

    fn gap(&mut self, len: u64, sink: &mut Sink<'_>) {
        if len == 0 {
            return;
        }
        sink(Delivery::Gap {
            len,
            offset: self.next,
        });
        self.next = self.next.saturating_add(len);
        self.recent.clear();
    }

    /// Keep the last `retx_compare_bytes` delivered bytes. The deque grows
    /// to that size on first use and never beyond it.
    fn remember(&mut self, bytes: &[u8]) {
        let cap = self.limits.retx_compare_bytes;
        if cap == 0 {
            return;
        }
        if bytes.len() >= cap {
            self.recent.clear();
            let tail = bytes
                .get(bytes.len().saturating_sub(cap)..)
                .unwrap_or(bytes);
            // By reference: std copies a slice into the deque with memcpy.
            self.recent.extend(tail);
        } else {
            let excess = (self.recent.len() + bytes.len())
                .saturating_sub(cap)
                .min(self.recent.len());
            self.recent.drain(..excess);
            self.recent.extend(bytes);
        }
    }

    /// Some held piece ends exactly at `at`.
    fn ends_at(&self, at: u64) -> bool {
        self.held
            .range(..at)
            .next_back()
            .is_some_and(|(&s, p)| s.saturating_add(p.len()) == at)
    }

    /// Insert a piece into free space, keeping `buffered` and `runs` exact.
    /// Adjacent Missing pieces are merged so their number stays bounded.
    fn insert_piece(&mut self, mut s: u64, mut piece: Piece) {
        if let Piece::Missing { len } = &mut piece {
            if let Some((&ls, Piece::Missing { len: ll })) = self.held.range(..s).next_back()
                && ls.saturating_add(*ll) == s
            {
                *len = len.saturating_add(*ll);
                self.remove_piece(ls);
                s = ls;
            }
            let e = s.saturating_add(*len);
            if let Some(Piece::Missing { len: rl }) = self.held.get(&e) {
                *len = len.saturating_add(*rl);
                self.remove_piece(e);
            }
        }
        let len = piece.len();
        if len == 0 {
            return;
        }
        let l = self.ends_at(s);
        let r = self.held.contains_key(&s.saturating_add(len));
        self.runs = (self.runs + 1).saturating_sub(usize::from(l) + usize::from(r));
        if let Piece::Bytes { data, .. } = &piece {
            self.buffered = self.buffered.saturating_add(data.len());
        }
        self.held.insert(s, piece);
    }

    /// Remove the piece starting at `s`, keeping `buffered` and `runs` exact.
    fn remove_piece(&mut self, s: u64) -> Option<Piece> {
        let piece = self.held.remove(&s)?;
        let l = self.ends_at(s);
        let r = self.held.contains_key(&s.saturating_add(piece.len()));
        self.runs = (self.runs + usize::from(l) + usize::from(r)).saturating_sub(1);
        if let Piece::Bytes { data, .. } = &piece {
            self.buffered = self.buffered.saturating_sub(data.len());
        }
        Some(piece)
    }
}

fn len64(b: &[u8]) -> u64 {
    b.len() as u64
}

fn len64_deque(d: &VecDeque<u8>) -> u64 {
    d.len() as u64
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Clamp a signed stream offset into `u64` (negative = before the origin).
fn clamp(v: i128) -> u64 {
    u64::try_from(v.max(0)).unwrap_or(u64::MAX)
}

/// Bytes `[from, to)` of a payload whose first byte sits at stream offset
/// `base`; empty if out of range.
fn sub_slice(payload: &[u8], base: i128, from: u64, to: u64) -> &[u8] {
    let lo = usize::try_from(i128::from(from) - base);
    let hi = usize::try_from(i128::from(to) - base);
    match (lo, hi) {
        (Ok(lo), Ok(hi)) => payload.get(lo..hi).unwrap_or_default(),
        _ => &[],
    }
}

/// First and last index where the two sequences differ (over their common length).
fn diff_span<'x>(
    a: impl Iterator<Item = &'x u8>,
    b: impl Iterator<Item = &'x u8>,
) -> Option<(u64, u64)> {
    let mut span: Option<(u64, u64)> = None;
    for (i, (x, y)) in (0u64..).zip(a.zip(b)) {
        if x != y {
            span = Some(span.map_or((i, i), |(first, _)| (first, i)));
        }
    }
    span
}

fn widen(span: &mut Option<(u64, u64)>, lo: u64, hi: u64) {
    *span = Some(match *span {
        Some((a, b)) => (a.min(lo), b.max(hi)),
        None => (lo, hi),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// Owned copy of a [`Delivery`], for assertions.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Ev {
        Data {
            bytes: Vec<u8>,
            frame: u64,
            offset: u64,
        },
        Gap {
            len: u64,
            offset: u64,
        },
        Fin {
            frame: u64,
        },
        Note {
            kind: StreamNoteKind,
            frame: u64,
            offset: u64,
            len: u64,
        },
    }

    fn own(d: Delivery<'_>) -> Ev {
        match d {
            Delivery::Data {
                bytes,
                frame,
                offset,
            } => Ev::Data {
                bytes: bytes.to_vec(),
                frame,
                offset,
            },
            Delivery::Gap { len, offset } => Ev::Gap { len, offset },
            Delivery::Fin { frame } => Ev::Fin { frame },
            Delivery::Note {
                kind,
                frame,
                offset,
                len,
            } => Ev::Note {
                kind,
                frame,
                offset,
                len,
            },
        }
    }

    fn data(bytes: &[u8], frame: u64, offset: u64) -> Ev {
        Ev::Data {
            bytes: bytes.to_vec(),
            frame,
            offset,
        }
    }

    fn note(kind: StreamNoteKind, frame: u64, offset: u64, len: u64) -> Ev {
        Ev::Note {
            kind,
            frame,
            offset,
            len,
        }
    }

    /// A stream plus the events it produced since the last `take`.
    struct H {
        hs: HalfStream,
        evs: Vec<Ev>,
    }

    impl H {
        fn new(limits: ReassemblyLimits) -> Self {
            H {
                hs: HalfStream::new(limits),
                evs: Vec::new(),
            }
        }

        fn default() -> Self {
            Self::new(ReassemblyLimits::default())
        }

        fn wire(&mut self, seq: u32, syn: bool, fin: bool, p: &[u8], wire: usize, frame: u64) {
            let evs = &mut self.evs;
            self.hs
                .segment(seq, syn, fin, p, wire, frame, &mut |d| evs.push(own(d)));
            if let Err(e) = self.hs.check_invariants() {
                panic!("after frame {frame}: {e}");
            }
        }

        fn seg(&mut self, seq: u32, syn: bool, fin: bool, p: &[u8], frame: u64) {
            self.wire(seq, syn, fin, p, p.len(), frame);
        }

        fn flush(&mut self) {
            let evs = &mut self.evs;
            self.hs.flush(&mut |d| evs.push(own(d)));
            if let Err(e) = self.hs.check_invariants() {
                panic!("after flush: {e}");
            }
        }

        fn take(&mut self) -> Vec<Ev> {
            std::mem::take(&mut self.evs)
        }
    }

    fn count(evs: &[Ev], kind: StreamNoteKind) -> usize {
        evs.iter()
            .filter(|e| matches!(e, Ev::Note { kind: k, .. } if *k == kind))
            .count()
    }

    /// Rebuild the delivered stream (None = Gap), checking that every Data
    /// and Gap starts exactly where the previous one ended (exactly once,
    /// in order) and that nothing follows a Fin.
    fn rebuild(evs: &[Ev], out: &mut Vec<Option<u8>>) -> Result<(), String> {
        let mut after_fin = false;
        for e in evs {
            match e {
                Ev::Data { bytes, offset, .. } => {
                    if after_fin || *offset != out.len() as u64 || bytes.is_empty() {
                        return Err(format!("bad Data at {offset}, have {}", out.len()));
                    }
                    out.extend(bytes.iter().map(|&b| Some(b)));
                }
                Ev::Gap { len, offset } => {
                    if after_fin || *offset != out.len() as u64 || *len == 0 {
                        return Err(format!("bad Gap at {offset}, have {}", out.len()));
                    }
                    out.extend(std::iter::repeat_n(None, *len as usize));
                }
                Ev::Fin { .. } => {
                    if after_fin {
                        return Err("second Fin".into());
                    }
                    after_fin = true;
                }
                Ev::Note { .. } => {}
            }
        }
        Ok(())
    }

    /// Like [`rebuild`] without materialising the stream (Gaps may be
    /// GiBs long): checks contiguity and returns the final offset.
    fn contiguous(evs: &[Ev]) -> Result<u64, String> {
        let mut at = 0u64;
        let mut after_fin = false;
        for e in evs {
            match e {
                Ev::Data { bytes, offset, .. } => {
                    if after_fin || *offset != at || bytes.is_empty() {
                        return Err(format!("bad Data at {offset}, have {at}"));
                    }
                    at += bytes.len() as u64;
                }
                Ev::Gap { len, offset } => {
                    if after_fin || *offset != at || *len == 0 {
                        return Err(format!("bad Gap at {offset}, have {at}"));
                    }
                    at += len;
                }
                Ev::Fin { .. } => {
                    if after_fin {
                        return Err("second Fin".into());
                    }
                    after_fin = true;
                }
                Ev::Note { .. } => {}
            }
        }
        Ok(at)
    }

    // ---- examples -------------------------------------------------------

    #[test]
    fn bare_ack_after_the_fin_is_not_data_after_fin() {
        let mut h = HalfStream::new(ReassemblyLimits::default());
        let mut out = Vec::new();
        h.segment(0, true, false, b"", 0, 1, &mut |d| {
            out.push(format!("{d:?}"))
        });
        h.segment(1, false, true, b"ab", 2, 2, &mut |d| {
            out.push(format!("{d:?}"))
        });
        // The last ACK of the teardown: seq = FIN + 1, no payload.
        h.segment(4, false, false, b"", 0, 3, &mut |d| {
            out.push(format!("{d:?}"))
        });
        assert!(out.iter().all(|d| !d.contains("DataAfterFin")), "{out:?}");
    }

    #[test]
    fn acked_unseen_bytes_skip_the_hole_at_once() {
        let mut h = HalfStream::new(ReassemblyLimits::default());
        let mut out = Vec::new();
        h.segment(1000, false, false, b"abc", 3, 1, &mut |d| {
            out.push(format!("{d:?}"))
        });
        // 10 bytes at 1003 never captured; 1013.. arrives and is held.
        h.segment(1013, false, false, b"xyz", 3, 2, &mut |d| {
            out.push(format!("{d:?}"))
        });
        assert_eq!(h.holes(), 1);
        // The peer acks 1016: the hole is permanent.
        let mut late = Vec::new();
        assert!(h.acked(1016, &mut |d| late.push(format!("{d:?}"))));
        assert_eq!(late.len(), 2, "{late:?}");
        assert!(late[0].contains("Gap { len: 10, offset: 3 }"), "{late:?}");
        assert!(late[1].contains("offset: 13"), "{late:?}");
        assert_eq!(
            (h.holes(), h.buffered_bytes(), h.delivered_offset()),
            (0, 0, 16)
        );
        // Acks of delivered bytes change nothing.
        assert!(!h.acked(1016, &mut |_| panic!("nothing to deliver")));
        assert!(!h.acked(900, &mut |_| panic!("nothing to deliver")));
        // An ack past everything seen gaps up to it; the next segment is in order.
        assert!(h.acked(1020, &mut |d| late.push(format!("{d:?}"))));
        assert_eq!(h.delivered_offset(), 20);
        let mut more = Vec::new();
        h.segment(1020, false, false, b"!", 1, 3, &mut |d| {
            more.push(format!("{d:?}"))
        });
        assert!(more[0].contains("Data"), "{more:?}");
        // Nonsense acks are ignored.
        assert!(
            !h.acked(1020u32.wrapping_add(MAX_ACK_SKIP + 5), &mut |_| panic!(
                "bogus"
            ))
        );
    }

    /// The dissector asks [`HalfStream::acks_unseen`] before calling
    /// [`HalfStream::acked`]: both must agree on every ACK, in every state
    /// (no origin, in order, behind a hole, after the FIN, near the wrap).
    #[test]
    fn acks_unseen_agrees_with_acked() {
        // Each state as the segments (seq, syn, fin, payload) that make it.
        type Seg = (u32, bool, bool, &'static [u8]);
        let states: Vec<Vec<Seg>> = vec![
            vec![],
            vec![(1000, false, false, b"abc")],
            vec![(1000, false, false, b"abc"), (1013, false, false, b"xyz")],
            vec![(10, true, false, b""), (11, false, true, b"ab")],
            vec![(u32::MAX - 2, false, false, b"wrap")],
        ];
        for segs in &states {
            let build = || {
                let mut h = HalfStream::new(ReassemblyLimits::default());
                for (i, &(seq, syn, fin, p)) in segs.iter().enumerate() {
                    h.segment(seq, syn, fin, p, p.len(), i as u64 + 1, &mut |_| {});
                }
                h
            };
            let base = segs.first().map_or(0, |s| s.0);
            let probes = (0u32..40)
                .map(|d| base.wrapping_add(d))
                .chain([base.wrapping_sub(5), base.wrapping_add(MAX_ACK_SKIP + 5)]);
            for ack in probes {
                let said = build().acks_unseen(ack);
                let did = build().acked(ack, &mut |_| {});
                assert_eq!(said, did, "state {segs:?}, ack {ack}");
            }
        }
    }

    #[test]
    fn acked_before_any_segment_is_ignored_and_fin_is_not_data() {
        let mut h = HalfStream::new(ReassemblyLimits::default());
        assert!(!h.acked(5, &mut |_| panic!("no origin yet")));
        let mut out = Vec::new();
        h.segment(10, true, false, b"", 0, 1, &mut |d| {
            out.push(format!("{d:?}"))
        });
        h.segment(11, false, true, b"ab", 2, 2, &mut |d| {
            out.push(format!("{d:?}"))
        });
        // ACK of the FIN (11 + 2 + 1) is not unseen data.
        assert!(!h.acked(14, &mut |d| out.push(format!("{d:?}"))));
        assert!(h.fin_seen());
    }

    #[test]
    fn in_order_segments_are_delivered_immediately() {
        let mut h = H::default();
        h.seg(1000, true, false, b"", 1);
        h.seg(1001, false, false, b"hello", 2);
        h.seg(1006, false, false, b" world", 3);
        assert_eq!(h.take(), vec![data(b"hello", 2, 0), data(b" world", 3, 5)]);
        assert_eq!(h.hs.delivered_offset(), 11);
        assert_eq!((h.hs.buffered_bytes(), h.hs.holes()), (0, 0));
    }

    #[test]
    fn in_order_fast_path_is_zero_copy() {
        let mut hs = HalfStream::new(ReassemblyLimits::default());
        let payloads: [&[u8]; 3] = [b"first", b"second", b"third"];
        let mut seq = 77u32;
        for (i, p) in payloads.iter().enumerate() {
            let mut ptrs = Vec::new();
            hs.segment(seq, false, false, p, p.len(), i as u64, &mut |d| {
                if let Delivery::Data { bytes, .. } = d {
                    ptrs.push((bytes.as_ptr(), bytes.len()));
                }
            });
            assert_eq!(ptrs, vec![(p.as_ptr(), p.len())]);
            seq = seq.wrapping_add(p.len() as u32);
        }
        assert_eq!(hs.buffered_bytes(), 0);
    }

    #[test]
    fn out_of_order_segment_is_held_then_delivered_with_its_frame() {
        let mut h = H::default();
        h.seg(0, true, false, b"", 1);
        h.seg(6, false, false, b"world", 2);
        assert_eq!(h.take(), vec![note(StreamNoteKind::OutOfOrder, 2, 5, 5)]);
        assert_eq!((h.hs.buffered_bytes(), h.hs.holes()), (5, 1));
        h.seg(1, false, false, b"hello", 3);
        assert_eq!(h.take(), vec![data(b"hello", 3, 0), data(b"world", 2, 5)]);
        assert_eq!((h.hs.buffered_bytes(), h.hs.holes()), (0, 0));
    }

    #[test]
    fn duplicate_segments_are_counted_as_retransmissions() {
        let mut h = H::default();
        h.seg(0, true, false, b"", 1);
        h.seg(1, false, false, b"hello", 2);
        h.seg(1, false, false, b"hello", 3);
        h.seg(21, false, false, b"later", 4);
        h.seg(21, false, false, b"later", 5);
        assert_eq!(
            h.take(),
            vec![
                data(b"hello", 2, 0),
                note(StreamNoteKind::Retransmission, 3, 0, 5),
                note(StreamNoteKind::OutOfOrder, 4, 20, 5),
                note(StreamNoteKind::Retransmission, 5, 20, 5),
            ]
        );
        assert_eq!(h.hs.buffered_bytes(), 5);
    }

    #[test]
    fn keep_alive_probe_is_noted_and_not_compared() {
        let mut h = H::default();
        h.seg(0, true, false, b"", 1);
        h.seg(1, false, false, b"hello", 2);
        h.seg(5, false, false, b"\0", 3); // SND.NXT - 1, one garbage octet
        h.seg(5, false, false, b"", 4); // zero-length probe
        h.seg(6, false, false, b"!", 5);
        assert_eq!(
            h.take(),
            vec![
                data(b"hello", 2, 0),
                note(StreamNoteKind::KeepAlive, 3, 4, 1),
                note(StreamNoteKind::KeepAlive, 4, 4, 0),
                data(b"!", 5, 5),
            ]
        );
    }

    #[test]
    fn partial_overlap_delivers_only_the_new_tail() {
        let mut h = H::default();
        h.seg(100, false, false, b"abcdefghij", 1);
        h.seg(105, false, false, b"fghijKLMNO", 2);
        assert_eq!(
            h.take(),
            vec![data(b"abcdefghij", 1, 0), data(b"KLMNO", 2, 10)]
        );
    }

    #[test]
    fn overlap_with_different_bytes_keeps_first_copy_and_notes_conflict() {
        // Against delivered data (the retransmission window).
        let mut h = H::default();
        h.seg(100, false, false, b"abcdefghij", 1);
        h.seg(105, false, false, b"fXhiXklmno", 2);
        assert_eq!(
            h.take(),
            vec![
                data(b"abcdefghij", 1, 0),
                note(StreamNoteKind::OverlapConflict, 2, 6, 4),
                data(b"klmno", 2, 10),
            ]
        );
        // Against held data.
        let mut h = H::default();
        h.seg(0, true, false, b"", 1);
        h.seg(11, false, false, b"0123456789", 2);
        h.seg(1, false, false, b"abcdefghijZZZZZ", 3);
        assert_eq!(
            h.take(),
            vec![
                note(StreamNoteKind::OutOfOrder, 2, 10, 10),
                note(StreamNoteKind::OverlapConflict, 3, 10, 5),
                data(b"abcdefghij", 3, 0),
                data(b"0123456789", 2, 10),
            ]
        );
        // Window off: nothing to compare, plain retransmission.
        let mut h = H::new(ReassemblyLimits {
            retx_compare_bytes: 0,
            ..ReassemblyLimits::default()
        });
        h.seg(100, false, false, b"abc", 1);
        h.seg(100, false, false, b"xyz", 2);
        assert_eq!(
            h.take(),
            vec![
                data(b"abc", 1, 0),
                note(StreamNoteKind::Retransmission, 2, 0, 3)
            ]
        );
    }

    #[test]
    fn syn_origin_is_seq_plus_one_and_syn_data_counts() {
        let mut h = H::default();
        // SYN carrying data (e.g. TFO): data starts at seq + 1.
        h.seg(4999, true, false, b"ab", 1);
        h.seg(5002, false, false, b"cd", 2);
        assert_eq!(h.hs.origin(), Some(SeqNum(5000)));
        assert_eq!(h.take(), vec![data(b"ab", 1, 0), data(b"cd", 2, 2)]);
    }

    #[test]
    fn mid_stream_capture_uses_first_seq_as_origin() {
        let mut h = H::default();
        h.seg(123_456, false, false, b"xyz", 7);
        assert_eq!(h.hs.origin(), Some(SeqNum(123_456)));
        assert_eq!(h.take(), vec![data(b"xyz", 7, 0)]);
    }

    #[test]
    fn late_or_repeated_syn_does_not_disturb_the_stream() {
        let mut h = H::default();
        h.seg(5000, false, false, b"abc", 1);
        h.seg(4999, true, false, b"", 2); // SYN captured after the data
        h.seg(4999, true, false, b"", 3); // and retransmitted
        h.seg(5003, false, false, b"def", 4);
        assert_eq!(h.take(), vec![data(b"abc", 1, 0), data(b"def", 4, 3)]);
        // Same with a SYN-first stream.
        let mut h = H::default();
        h.seg(9, true, false, b"", 1);
        h.seg(10, false, false, b"abc", 2);
        h.seg(9, true, false, b"", 3);
        h.seg(13, false, false, b"def", 4);
        assert_eq!(h.take(), vec![data(b"abc", 2, 0), data(b"def", 4, 3)]);
    }

    #[test]
    fn sequence_numbers_wrap_past_2_pow_32() {
        let isn = 0xFFFF_FF00u32;
        let stream: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
        let mut h = H::default();
        h.seg(isn, true, false, b"", 0);
        // Four 256-byte segments, the second and third straddle/follow 2^32,
        // fed out of order.
        for &k in &[2usize, 1, 3, 0] {
            let seq = isn.wrapping_add(1).wrapping_add((k * 256) as u32);
            h.seg(
                seq,
                false,
                false,
                &stream[k * 256..(k + 1) * 256],
                k as u64 + 1,
            );
        }
        let mut out = Vec::new();
        rebuild(&h.take(), &mut out).unwrap();
        assert_eq!(out, stream.iter().map(|&b| Some(b)).collect::<Vec<_>>());
        assert_eq!(h.hs.origin(), Some(SeqNum(0xFFFF_FF01)));
        assert_eq!((h.hs.buffered_bytes(), h.hs.holes()), (0, 0));
    }

    #[test]
    fn origin_near_the_i32_sign_boundary() {
        let base = 0x7FFF_FFF0u32;
        let mut h = H::default();
        h.seg(base, false, false, b"0123456789", 1); // up to 0x7FFF_FFFA
        h.seg(base + 20, false, false, b"KLMNOPQRST", 2); // past 0x8000_0000
        h.seg(base + 10, false, false, b"abcdefghij", 3); // crosses it
        assert_eq!(
            h.take(),
            vec![
                data(b"0123456789", 1, 0),
                note(StreamNoteKind::OutOfOrder, 2, 20, 10),
                data(b"abcdefghij", 3, 10),
                data(b"KLMNOPQRST", 2, 20),
            ]
        );
    }

    #[test]
    fn seqnum_comparisons_are_modulo_2_pow_32() {
        assert_eq!(SeqNum(5).diff(SeqNum(u32::MAX)), 6);
        assert_eq!(SeqNum(u32::MAX).diff(SeqNum(5)), -6);
        assert_eq!(SeqNum(0x8000_0000).diff(SeqNum(0)), -(1i64 << 31));
        assert_eq!(SeqNum(0x7FFF_FFFF).diff(SeqNum(0)), (1i64 << 31) - 1);
        assert!(SeqNum(u32::MAX).precedes(SeqNum(3)));
        assert_eq!(SeqNum(u32::MAX) + 2, SeqNum(1));
    }

    #[test]
    fn fin_in_order_closes_the_direction() {
        let mut h = H::default();
        h.seg(0, true, false, b"", 1);
        h.seg(1, false, true, b"bye", 2);
        assert_eq!(h.take(), vec![data(b"bye", 2, 0), Ev::Fin { frame: 2 }]);
        assert!(h.hs.fin_seen());
        h.seg(1, false, true, b"bye", 3); // retransmitted FIN
        h.seg(4, false, false, b"junk", 4); // data after FIN
        h.seg(4, false, true, b"", 5); // bare FIN retransmission
        assert_eq!(
            h.take(),
            vec![
                note(StreamNoteKind::Retransmission, 3, 0, 3),
                note(StreamNoteKind::DataAfterFin, 4, 3, 4),
                note(StreamNoteKind::Retransmission, 5, 3, 0),
            ]
        );
        assert_eq!(h.hs.delivered_offset(), 3);
    }

    #[test]
    fn fin_arriving_before_the_data_that_precedes_it() {
        let mut h = H::default();
        h.seg(0, true, false, b"", 1);
        h.seg(11, false, true, b"0123456789", 2);
        assert!(!h.hs.fin_seen());
        h.seg(1, false, false, b"abcdefghij", 3);
        assert_eq!(
            h.take(),
            vec![
                note(StreamNoteKind::OutOfOrder, 2, 10, 10),
                data(b"abcdefghij", 3, 0),
                data(b"0123456789", 2, 10),
                Ev::Fin { frame: 2 },
            ]
        );
        // A bare FIN ahead of the data.
        let mut h = H::default();
        h.seg(100, false, false, b"ab", 1);
        h.seg(104, false, true, b"", 2);
        assert_eq!(h.hs.holes(), 0);
        h.seg(102, false, false, b"cd", 3);
        assert_eq!(
            h.take(),
            vec![data(b"ab", 1, 0), data(b"cd", 3, 2), Ev::Fin { frame: 2 }]
        );
        assert!(h.hs.fin_seen());
    }

    #[test]
    fn fin_discards_held_data_beyond_it() {
        let mut h = H::default();
        h.seg(0, true, false, b"", 1);
        h.seg(31, false, false, b"0123456789", 2);
        h.seg(16, false, true, b"FGHIJ", 3); // FIN at 20, data 15..20
        assert_eq!(h.hs.buffered_bytes(), 5);
        h.seg(1, false, false, b"abcdefghijklmno", 4);
        assert_eq!(
            h.take(),
            vec![
                note(StreamNoteKind::OutOfOrder, 2, 30, 10),
                note(StreamNoteKind::DataAfterFin, 3, 20, 10),
                note(StreamNoteKind::OutOfOrder, 3, 15, 5),
                data(b"abcdefghijklmno", 4, 0),
                data(b"FGHIJ", 3, 15),
                Ev::Fin { frame: 3 },
            ]
        );
        assert_eq!((h.hs.buffered_bytes(), h.hs.holes()), (0, 0));
    }

    #[test]
    fn snaplen_truncation_becomes_a_gap_then_the_stream_resumes() {
        let payload: Vec<u8> = (0..100u8).collect();
        let mut h = H::default();
        h.seg(0, true, false, b"", 1);
        h.wire(1, false, false, &payload[..60], 100, 2);
        h.seg(101, false, false, b"next", 3);
        assert_eq!(
            h.take(),
            vec![
                note(StreamNoteKind::TruncatedSegment, 2, 60, 40),
                data(&payload[..60], 2, 0),
                Ev::Gap {
                    len: 40,
                    offset: 60
                },
                data(b"next", 3, 100),
            ]
        );
        // Held truncated segment: the missing tail is a Gap once reached.
        let mut h = H::default();
        h.seg(0, true, false, b"", 1);
        h.wire(101, false, false, &payload[..30], 100, 2);
        assert_eq!(h.hs.buffered_bytes(), 30);
        h.seg(1, false, false, &payload, 3);
        h.seg(201, false, false, b"tail", 4);
        assert_eq!(
            h.take(),
            vec![
                note(StreamNoteKind::TruncatedSegment, 2, 130, 70),
                note(StreamNoteKind::OutOfOrder, 2, 100, 100),
                data(&payload, 3, 0),
                data(&payload[..30], 2, 100),
                Ev::Gap {
                    len: 70,
                    offset: 130
                },
                data(b"tail", 4, 200),
            ]
        );
        assert_eq!((h.hs.buffered_bytes(), h.hs.holes()), (0, 0));
    }

    #[test]
    fn padding_beyond_wire_len_is_ignored() {
        let mut h = H::default();
        h.wire(50, false, false, b"abcdef\0\0\0\0", 6, 1);
        assert_eq!(h.take(), vec![data(b"abcdef", 1, 0)]);
    }

    #[test]
    fn hole_then_flush_gives_gap_then_held_data() {
        let mut h = H::default();
        h.seg(0, true, false, b"", 1);
        h.seg(1, false, false, b"01234", 2);
        h.seg(11, false, false, b"ABCDE", 3);
        h.seg(21, false, false, b"VWXYZ", 4);
        assert_eq!(h.hs.holes(), 2);
        h.take();
        h.flush();
        assert_eq!(
            h.take(),
            vec![
                Ev::Gap { len: 5, offset: 5 },
                data(b"ABCDE", 3, 10),
                Ev::Gap { len: 5, offset: 15 },
                data(b"VWXYZ", 4, 20),
            ]
        );
        assert_eq!((h.hs.buffered_bytes(), h.hs.holes()), (0, 0));
        assert_eq!(h.hs.delivered_offset(), 25);
        // The stream keeps working after a flush.
        h.seg(26, false, false, b"more", 5);
        assert_eq!(h.take(), vec![data(b"more", 5, 25)]);
    }

    #[test]
    fn flush_with_a_known_fin_gaps_up_to_it() {
        let mut h = H::default();
        h.seg(0, true, false, b"", 1);
        h.seg(1, false, false, b"01234", 2);
        h.seg(11, false, true, b"", 3);
        h.take();
        h.flush();
        assert_eq!(
            h.take(),
            vec![Ev::Gap { len: 5, offset: 5 }, Ev::Fin { frame: 3 }]
        );
        assert!(h.hs.fin_seen());
    }

    #[test]
    fn buffer_limit_skips_the_oldest_hole() {
        let limits = ReassemblyLimits {
            max_buffered_bytes: 20,
            ..ReassemblyLimits::default()
        };
        let mut h = H::new(limits);
        h.seg(0, true, false, b"", 1);
        h.seg(11, false, false, &[b'a'; 10], 2);
        h.seg(31, false, false, &[b'b'; 10], 3);
        assert_eq!(h.hs.buffered_bytes(), 20);
        h.take();
        h.seg(51, false, false, &[b'c'; 10], 4);
        assert_eq!(
            h.take(),
            vec![
                note(StreamNoteKind::BufferLimit, 4, 0, 10),
                Ev::Gap { len: 10, offset: 0 },
                data(&[b'a'; 10], 2, 10),
                note(StreamNoteKind::OutOfOrder, 4, 50, 10),
            ]
        );
        assert_eq!(h.hs.buffered_bytes(), 20);
        assert_eq!(h.hs.holes(), 2);

        // A single segment larger than the limit is delivered past a Gap.
        let mut h = H::new(ReassemblyLimits {
            max_buffered_bytes: 5,
            ..ReassemblyLimits::default()
        });
        h.seg(0, true, false, b"", 1);
        h.seg(11, false, false, b"0123456789", 2);
        assert_eq!(
            h.take(),
            vec![
                note(StreamNoteKind::BufferLimit, 2, 0, 10),
                Ev::Gap { len: 10, offset: 0 },
                data(b"0123456789", 2, 10),
            ]
        );
        assert_eq!(h.hs.buffered_bytes(), 0);
    }

    #[test]
    fn hole_limit_skips_the_oldest_hole() {
        let mut h = H::new(ReassemblyLimits {
            max_holes: 2,
            ..ReassemblyLimits::default()
        });
        h.seg(0, true, false, b"", 1);
        h.seg(11, false, false, b"aa", 2);
        h.seg(21, false, false, b"bb", 3);
        h.seg(23, false, false, b"cc", 4); // extends a run: no new hole
        assert_eq!(h.hs.holes(), 2);
        h.take();
        h.seg(31, false, false, b"dd", 5);
        assert_eq!(
            h.take(),
            vec![
                note(StreamNoteKind::HoleLimit, 5, 0, 10),
                Ev::Gap { len: 10, offset: 0 },
                data(b"aa", 2, 10),
                note(StreamNoteKind::OutOfOrder, 5, 30, 2),
            ]
        );
        assert_eq!(h.hs.holes(), 2);
        assert_eq!(h.hs.buffered_bytes(), 6);
    }

    #[test]
    fn segment_beyond_the_signed_window_is_dropped_with_a_note() {
        let mut h = H::default();
        h.seg(0, false, false, b"abc", 1);
        h.seg(3 + 0x7FFF_FFF0, false, false, &[0; 100], 2);
        assert_eq!(
            h.take(),
            vec![
                data(b"abc", 1, 0),
                note(StreamNoteKind::OutOfWindow, 2, 3 + 0x7FFF_FFF0, 100),
            ]
        );
        assert_eq!((h.hs.buffered_bytes(), h.hs.holes()), (0, 0));
    }

    #[test]
    fn data_before_the_origin_counts_as_retransmission() {
        let mut h = H::default();
        h.seg(1000, false, false, b"abcde", 1);
        h.seg(990, false, false, b"0123456789", 2); // entirely before origin
        h.seg(995, false, false, b"vwxyzabcde", 3); // before origin + delivered
        assert_eq!(
            h.take(),
            vec![
                data(b"abcde", 1, 0),
                note(StreamNoteKind::Retransmission, 2, 0, 10),
                note(StreamNoteKind::Retransmission, 3, 0, 10),
            ]
        );
    }

    #[test]
    fn stream_offsets_grow_past_4_gib() {
        // With no room to hold anything, every jump ahead becomes a Gap.
        let mut h = H::new(ReassemblyLimits {
            max_holes: 0,
            retx_compare_bytes: 16,
            ..ReassemblyLimits::default()
        });
        let mut seq = 0xF000_0000u32;
        h.seg(seq, false, false, b"x", 0);
        seq = seq.wrapping_add(1);
        for frame in 1..=5u64 {
            seq = seq.wrapping_add(0x4000_0000);
            h.seg(seq, false, false, b"y", frame);
            seq = seq.wrapping_add(1);
        }
        let evs = h.take();
        let expected = 1 + 5 * (0x4000_0000u64 + 1);
        assert_eq!(contiguous(&evs), Ok(expected));
        assert_eq!(h.hs.delivered_offset(), expected);
        assert!(expected > 1u64 << 32);
        assert_eq!(count(&evs, StreamNoteKind::HoleLimit), 5);
        h.seg(seq, false, false, b"in order", 9);
        assert_eq!(h.take(), vec![data(b"in order", 9, expected)]);
    }

    // ---- properties ----------------------------------------------------

    fn isn_strategy() -> impl Strategy<Value = u32> {
        prop_oneof![
            any::<u32>(),
            (u32::MAX - 4096)..=u32::MAX,
            0x7FFF_F000u32..=0x8000_1000u32,
        ]
    }

    /// Cut `0..n` into consecutive segments with sizes taken from `sizes`.
    fn cut(n: usize, sizes: &[usize]) -> Vec<(usize, usize)> {
        let mut segs = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < n {
            let end = (pos + sizes[i % sizes.len()]).min(n);
            segs.push((pos, end));
            pos = end;
            i += 1;
        }
        segs
    }

    /// Reorder so that no segment moves more than 8 places.
    fn shuffle_bounded<T: Clone>(items: &[T], disp: &[usize]) -> Vec<T> {
        let mut keyed: Vec<(usize, usize, T)> = items
            .iter()
            .enumerate()
            .map(|(i, t)| (i + disp[i % disp.len()] % 9, i, t.clone()))
            .collect();
        keyed.sort_by_key(|k| (k.0, k.1));
        keyed.into_iter().map(|k| k.2).collect()
    }

    /// (start, end, fin)
    type Seg = (usize, usize, bool);

    /// Insert duplicates: re-cuts of arbitrary ranges and exact copies.
    fn add_duplicates(
        order: &mut Vec<Seg>,
        n: usize,
        recuts: &[(usize, usize, usize)],
        copies: &[(usize, usize)],
    ) {
        if n > 0 {
            for &(a, len, pos) in recuts {
                let a = a % n;
                let b = (a + len).min(n);
                order.insert(pos % (order.len() + 1), (a, b, false));
            }
        }
        for &(which, pos) in copies {
            if !order.is_empty() {
                let s = order[which % order.len()];
                order.insert(pos % (order.len() + 1), s);
            }
        }
    }

    fn feed(h: &mut H, isn: u32, stream: &[u8], order: &[Seg], syn_retx: &[usize]) {
        for (i, &(a, b, fin)) in order.iter().enumerate() {
            if syn_retx.iter().any(|&p| p % (order.len() + 1) == i) {
                h.seg(isn, true, false, b"", 0);
            }
            let seq = isn.wrapping_add(1).wrapping_add(a as u32);
            h.seg(seq, false, fin, &stream[a..b], i as u64 + 1);
        }
    }

    fn coverage(stream: &[u8], fed: &[Seg]) -> Vec<Option<u8>> {
        let end = fed.iter().map(|s| s.1).max().unwrap_or(0);
        let mut model = vec![None; end];
        for &(a, b, _) in fed {
            for i in a..b {
                model[i] = Some(stream[i]);
            }
        }
        model
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Reordering (bounded displacement), exact and re-cut
        /// retransmissions, repeated SYNs and a random ISN never change
        /// the delivered stream: every byte exactly once, in order, no Gap,
        /// no conflict, Fin last.
        #[test]
        fn prop_reordered_duplicated_stream_is_delivered_exactly_once(
            isn in isn_strategy(),
            stream in vec(any::<u8>(), 0..3000),
            sizes in vec(1usize..300, 1..16),
            disp in vec(0usize..9, 1..32),
            recuts in vec((any::<usize>(), 1usize..400, any::<usize>()), 0..12),
            copies in vec((any::<usize>(), any::<usize>()), 0..8),
            syn_retx in vec(any::<usize>(), 0..3),
            with_fin in any::<bool>(),
        ) {
            let n = stream.len();
            let mut segs: Vec<Seg> = cut(n, &sizes).into_iter().map(|(a, b)| (a, b, false)).collect();
            if with_fin {
                match segs.last_mut() {
                    Some(last) => last.2 = true,
                    None => segs.push((0, 0, true)),
                }
            }
            let mut order = shuffle_bounded(&segs, &disp);
            add_duplicates(&mut order, n, &recuts, &copies);

            let mut h = H::default();
            h.seg(isn, true, false, b"", 0);
            feed(&mut h, isn, &stream, &order, &syn_retx);
            let evs = h.take();

            let mut out = Vec::new();
            prop_assert_eq!(rebuild(&evs, &mut out), Ok(()));
            prop_assert!(out.iter().all(Option::is_some), "no Gap expected");
            let bytes: Vec<u8> = out.into_iter().flatten().collect();
            prop_assert_eq!(&bytes, &stream);
            prop_assert_eq!(h.hs.delivered_offset(), n as u64);
            for kind in [
                StreamNoteKind::OverlapConflict,
                StreamNoteKind::BufferLimit,
                StreamNoteKind::HoleLimit,
                StreamNoteKind::DataAfterFin,
                StreamNoteKind::TruncatedSegment,
                StreamNoteKind::OutOfWindow,
            ] {
                prop_assert_eq!(count(&evs, kind), 0, "{:?}", kind);
            }
            let fins = evs.iter().filter(|e| matches!(e, Ev::Fin { .. })).count();
            prop_assert_eq!(fins, usize::from(with_fin));
            prop_assert_eq!(h.hs.fin_seen(), with_fin);
            if with_fin {
                let last = evs.iter().rev().find(|e| !matches!(e, Ev::Note { .. }));
                let fin_is_last = matches!(last, Some(Ev::Fin { .. }));
                prop_assert!(fin_is_last, "Fin must follow all data");
            }
            prop_assert_eq!((h.hs.buffered_bytes(), h.hs.holes()), (0, 0));
            h.flush();
            prop_assert_eq!(h.take(), vec![]);
        }

        /// Dropped segments + flush, generous limits: the delivered stream
        /// equals the obviously-correct `Vec<Option<u8>>` model, i.e. bytes
        /// match where present and Gaps cover exactly the missing ranges.
        #[test]
        fn prop_dropped_segments_then_flush_match_option_model(
            isn in isn_strategy(),
            stream in vec(any::<u8>(), 0..3000),
            sizes in vec(1usize..300, 1..16),
            disp in vec(0usize..9, 1..32),
            keep in vec(proptest::bool::weighted(0.7), 1..40),
            recuts in vec((any::<usize>(), 1usize..400, any::<usize>()), 0..6),
            copies in vec((any::<usize>(), any::<usize>()), 0..6),
        ) {
            let n = stream.len();
            let segs: Vec<Seg> = cut(n, &sizes)
                .into_iter()
                .enumerate()
                .filter(|(i, _)| keep[i % keep.len()])
                .map(|(_, (a, b))| (a, b, false))
                .collect();
            let mut order = shuffle_bounded(&segs, &disp);
            add_duplicates(&mut order, n, &recuts, &copies);
            let model = coverage(&stream, &order);

            let mut h = H::new(ReassemblyLimits {
                max_buffered_bytes: 1 << 30,
                max_holes: 1 << 20,
                retx_compare_bytes: 4096,
            });
            h.seg(isn, true, false, b"", 0);
            feed(&mut h, isn, &stream, &order, &[]);
            let before = h.take();
            prop_assert!(!before.iter().any(|e| matches!(e, Ev::Gap { .. })), "Gap before flush");
            h.flush();
            let after = h.take();
            let evs: Vec<Ev> = before.into_iter().chain(after).collect();

            let mut out = Vec::new();
            prop_assert_eq!(rebuild(&evs, &mut out), Ok(()));
            prop_assert_eq!(&out, &model);
            prop_assert_eq!(h.hs.delivered_offset(), model.len() as u64);
            prop_assert_eq!((h.hs.buffered_bytes(), h.hs.holes()), (0, 0));
            for kind in [
                StreamNoteKind::OverlapConflict,
                StreamNoteKind::BufferLimit,
                StreamNoteKind::HoleLimit,
            ] {
                prop_assert_eq!(count(&evs, kind), 0, "{:?}", kind);
            }
        }

        /// Snaplen-truncated segments (some copies cut short), dropped
        /// segments, duplicates, then flush, generous limits: each offset
        /// is decided by the first copy covering it in capture order (first
        /// copy wins): its byte if that copy captured it, a Gap otherwise.
        #[test]
        fn prop_truncated_segments_match_first_copy_model(
            isn in isn_strategy(),
            stream in vec(any::<u8>(), 0..3000),
            sizes in vec(1usize..300, 1..16),
            disp in vec(0usize..9, 1..32),
            keep in vec(proptest::bool::weighted(0.8), 1..40),
            recuts in vec((any::<usize>(), 1usize..400, any::<usize>()), 0..6),
            copies in vec((any::<usize>(), any::<usize>()), 0..6),
            caps in vec(proptest::option::weighted(0.3, prop_oneof![Just(0usize), 0usize..300]), 1..40),
        ) {
            let n = stream.len();
            let segs: Vec<Seg> = cut(n, &sizes)
                .into_iter()
                .enumerate()
                .filter(|(i, _)| keep[i % keep.len()])
                .map(|(_, (a, b))| (a, b, false))
                .collect();
            let mut order = shuffle_bounded(&segs, &disp);
            add_duplicates(&mut order, n, &recuts, &copies);
            let captured = |i: usize, a: usize, b: usize| match caps[i % caps.len()] {
                Some(cap) => a + cap.min(b - a),
                None => b,
            };

            let end = order.iter().map(|s| s.1).max().unwrap_or(0);
            let mut model: Vec<Option<u8>> = vec![None; end];
            let mut decided = vec![false; end];
            for (i, &(a, b, _)) in order.iter().enumerate() {
                let c = captured(i, a, b);
                for k in a..b {
                    if !decided[k] {
                        decided[k] = true;
                        model[k] = (k < c).then(|| stream[k]);
                    }
                }
            }

            let mut h = H::new(ReassemblyLimits {
                max_buffered_bytes: 1 << 30,
                max_holes: 1 << 20,
                retx_compare_bytes: 4096,
            });
            h.seg(isn, true, false, b"", 0);
            for (i, &(a, b, _)) in order.iter().enumerate() {
                let seq = isn.wrapping_add(1).wrapping_add(a as u32);
                h.wire(seq, false, false, &stream[a..captured(i, a, b)], b - a, i as u64 + 1);
            }
            h.flush();
            let evs = h.take();
            let mut out = Vec::new();
            prop_assert_eq!(rebuild(&evs, &mut out), Ok(()));
            prop_assert_eq!(&out, &model);
            prop_assert_eq!((h.hs.buffered_bytes(), h.hs.holes()), (0, 0));
            prop_assert_eq!(count(&evs, StreamNoteKind::OverlapConflict), 0);
        }

        /// Tight random limits: held bytes and holes never exceed them,
        /// nothing panics, and every delivered byte is the right byte at the
        /// right offset (limits only turn data into Gaps, never corrupt it).
        #[test]
        fn prop_tight_limits_stay_bounded_and_correct(
            isn in isn_strategy(),
            stream in vec(any::<u8>(), 0..2000),
            sizes in vec(1usize..200, 1..16),
            disp in vec(0usize..9, 1..32),
            keep in vec(proptest::bool::weighted(0.7), 1..40),
            recuts in vec((any::<usize>(), 1usize..300, any::<usize>()), 0..6),
            max_buffered_bytes in 0usize..600,
            max_holes in 0usize..5,
            retx_compare_bytes in 0usize..64,
        ) {
            let n = stream.len();
            let segs: Vec<Seg> = cut(n, &sizes)
                .into_iter()
                .enumerate()
                .filter(|(i, _)| keep[i % keep.len()])
                .map(|(_, (a, b))| (a, b, false))
                .collect();
            let mut order = shuffle_bounded(&segs, &disp);
            add_duplicates(&mut order, n, &recuts, &[]);
            let model = coverage(&stream, &order);

            let limits = ReassemblyLimits { max_buffered_bytes, max_holes, retx_compare_bytes };
            let mut h = H::new(limits);
            h.seg(isn, true, false, b"", 0);
            for (i, &(a, b, _)) in order.iter().enumerate() {
                let seq = isn.wrapping_add(1).wrapping_add(a as u32);
                h.seg(seq, false, false, &stream[a..b], i as u64 + 1);
                prop_assert!(h.hs.buffered_bytes() <= max_buffered_bytes);
                prop_assert!(h.hs.holes() <= max_holes);
            }
            h.flush();
            let evs = h.take();
            let mut out = Vec::new();
            prop_assert_eq!(rebuild(&evs, &mut out), Ok(()));
            prop_assert_eq!(out.len(), model.len());
            for (i, got) in out.iter().enumerate() {
                if let Some(b) = got {
                    prop_assert_eq!(Some(*b), model[i], "offset {}", i);
                }
            }
            prop_assert_eq!((h.hs.buffered_bytes(), h.hs.holes()), (0, 0));
        }

        /// Arbitrary garbage (random sequence numbers, flags, truncation,
        /// padding, limits): no panic, limits hold, deliveries stay
        /// contiguous, at most one Fin and nothing after it.
        #[test]
        fn prop_arbitrary_segments_never_break_invariants(
            base in any::<u32>(),
            segs in vec((
                prop_oneof![0u32..3000, any::<u32>()],
                proptest::bool::weighted(0.1),
                proptest::bool::weighted(0.1),
                vec(any::<u8>(), 0..64),
                0usize..40,
                any::<bool>(),
            ), 0..60),
            max_buffered_bytes in 0usize..300,
            max_holes in 0usize..6,
            retx_compare_bytes in 0usize..50,
        ) {
            let limits = ReassemblyLimits { max_buffered_bytes, max_holes, retx_compare_bytes };
            let mut h = H::new(limits);
            for (i, (delta, syn, fin, payload, extra, truncated)) in segs.iter().enumerate() {
                let wire = if *truncated { payload.len() + extra } else { payload.len().saturating_sub(*extra) };
                h.wire(base.wrapping_add(*delta), *syn, *fin, payload, wire, i as u64);
                prop_assert!(h.hs.buffered_bytes() <= max_buffered_bytes);
                prop_assert!(h.hs.holes() <= max_holes);
            }
            h.flush();
            let evs = h.take();
            prop_assert_eq!(contiguous(&evs), Ok(h.hs.delivered_offset()));
            prop_assert_eq!((h.hs.buffered_bytes(), h.hs.holes()), (0, 0));
        }
    }
}

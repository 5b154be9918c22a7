//! Fuzz target: one direction of TCP reassembly (`xmppscope::tcp::reassembly::HalfStream`).
//!
//! Input layout (missing bytes read as 0):
//!
//! ```text
//! byte 0        flags: bit 0 = small limits (bytes 1..3 below)
//! byte 1        max_buffered_bytes / 4 when small
//! byte 2        max_holes when small (0..=7)
//! byte 3        retx_compare_bytes when small (0..=255)
//! bytes 4..8    initial sequence number (u32 LE), to explore wrap-around
//! then records until the input ends:
//!   u8  flags   bit 0 SYN, bit 1 FIN, bit 2 snaplen cut (extra u8: bytes
//!               missing), bit 3 far sequence number (u32 LE absolute
//!               instead of u16 LE offset from the ISN), bit 4 call
//!               acked(ISN + u16 LE), bit 5 call flush() after the segment
//!   seq         u16 LE offset (or u32 LE with bit 3)
//!   u8  len     captured payload length (0..=255), then the payload
//! ```
//!
//! Invariants checked on every delivery: Data and Gap are contiguous from
//! offset 0 and non-empty, `delivered_offset()` follows them, every delivered
//! byte is one that some segment carried at that stream offset, nothing is
//! delivered after the Fin, at most one Fin; after every call the held data
//! stays within `max_buffered_bytes` and `max_holes`; after the final
//! `flush()` nothing is held.

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use xmppscope::tcp::reassembly::{Delivery, HalfStream, ReassemblyLimits, SeqNum};

struct Input<'a> {
    d: &'a [u8],
}

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.d.split_first() {
            Some((&b, rest)) => {
                self.d = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | (u16::from(self.u8()) << 8)
    }
    fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | (u32::from(self.u16()) << 16)
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.d.len());
        let (a, b) = self.d.split_at(n);
        self.d = b;
        a
    }
}

/// What the sink saw, checked as it goes.
#[derive(Default)]
struct Check {
    /// Next stream offset expected in a Data or Gap.
    next: u64,
    fin: bool,
    /// Stream offset -> bytes some segment carried there.
    seen: HashMap<u64, Vec<u8>>,
}

impl Check {
    fn on(&mut self, d: Delivery<'_>) {
        match d {
            Delivery::Data {
                bytes,
                frame: _,
                offset,
            } => {
                assert!(!self.fin, "Data after the Fin");
                assert!(!bytes.is_empty(), "empty Data");
                assert_eq!(offset, self.next, "Data not contiguous");
                for (i, b) in bytes.iter().enumerate() {
                    let o = offset + i as u64;
                    let ok = self.seen.get(&o).is_some_and(|v| v.contains(b));
                    assert!(ok, "byte {b:#04x} at offset {o} was never captured there");
                }
                self.next += bytes.len() as u64;
            }
            Delivery::Gap { len, offset } => {
                assert!(!self.fin, "Gap after the Fin");
                assert!(len > 0, "empty Gap");
                assert_eq!(offset, self.next, "Gap not contiguous");
                self.next = self.next.checked_add(len).expect("offset overflow");
            }
            Delivery::Fin { .. } => {
                assert!(!self.fin, "second Fin");
                self.fin = true;
            }
            Delivery::Note { .. } => {}
        }
    }
}

fn check_state(h: &HalfStream, c: &Check, lim: &ReassemblyLimits) {
    assert_eq!(h.delivered_offset(), c.next, "delivered_offset");
    assert!(
        h.buffered_bytes() <= lim.max_buffered_bytes,
        "buffered {} > {}",
        h.buffered_bytes(),
        lim.max_buffered_bytes
    );
    assert!(
        h.holes() <= lim.max_holes,
        "holes {} > {}",
        h.holes(),
        lim.max_holes
    );
    assert_eq!(h.fin_seen(), c.fin);
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input { d: data };
    let flags = inp.u8();
    let (b, h, r) = (inp.u8(), inp.u8(), inp.u8());
    let lim = if flags & 1 != 0 {
        ReassemblyLimits {
            max_buffered_bytes: usize::from(b) * 4,
            max_holes: usize::from(h % 8),
            retx_compare_bytes: usize::from(r),
        }
    } else {
        ReassemblyLimits::default()
    };
    let isn = inp.u32();
    let mut hs = HalfStream::new(lim);
    let mut c = Check::default();
    let mut frame = 0u64;
    while !inp.d.is_empty() {
        frame += 1;
        let f = inp.u8();
        let syn = f & 1 != 0;
        let fin = f & 2 != 0;
        let missing = if f & 4 != 0 { usize::from(inp.u8()) } else { 0 };
        let seq = if f & 8 != 0 {
            inp.u32()
        } else {
            isn.wrapping_add(u32::from(inp.u16()))
        };
        let ack = (f & 16 != 0).then(|| isn.wrapping_add(u32::from(inp.u16())));
        let len = usize::from(inp.u8());
        let payload = inp.take(len);
        let wire_len = payload.len() + missing;

        // Where the reassembler will place this segment (RFC 9293 §3.4:
        // relative to the delivery point, modulo 2^32), to record which
        // bytes were captured at which stream offset.
        let data_seq = SeqNum(seq).wrapping_add(u32::from(syn));
        let origin = hs.origin().unwrap_or(data_seq);
        let next = hs.delivered_offset();
        let rel = data_seq.diff(origin.wrapping_add(next as u32));
        let start = i128::from(next) + i128::from(rel);
        for (i, &b) in payload.iter().enumerate() {
            let o = start + i as i128;
            if o >= 0 {
                c.seen.entry(o as u64).or_default().push(b);
            }
        }

        hs.segment(seq, syn, fin, payload, wire_len, frame, &mut |d| c.on(d));
        check_state(&hs, &c, &lim);
        if let Some(a) = ack {
            hs.acked(a, &mut |d| c.on(d));
            check_state(&hs, &c, &lim);
        }
        if f & 32 != 0 {
            hs.flush(&mut |d| c.on(d));
            check_state(&hs, &c, &lim);
            assert_eq!(hs.buffered_bytes(), 0, "flush left data held");
            assert_eq!(hs.holes(), 0, "flush left holes");
        }
    }
    hs.flush(&mut |d| c.on(d));
    check_state(&hs, &c, &lim);
    assert_eq!(hs.buffered_bytes(), 0, "flush left data held");
    assert_eq!(hs.holes(), 0, "flush left holes");
});

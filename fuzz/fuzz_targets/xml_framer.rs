//! Fuzz target: the resumable XML framer (`xmppscope::xmpp::framer::Framer`).
//!
//! Input layout (all optional; missing bytes read as 0):
//!
//! ```text
//! byte 0      flags: bit 0 = small limits (bytes 1, 2), bit 1 = ops present
//! byte 1      max_element_bytes when small (0..=255)
//! byte 2      max_depth when small (0..=7)
//! byte 3      number of extra cut points (0..=31), each a u16 LE
//! if ops:     byte = number of ops (0..=3), each: u16 LE position, u8 kind
//!             (kind 0 = resync(), otherwise gap(kind))
//! rest        the stream bytes
//! ```
//!
//! The stream is first cut at the op positions into segments, with the op
//! (gap or resync) applied after its segment. Run A pushes each segment
//! whole; run B also cuts every segment at the fuzzer's cut points; run C
//! (small inputs only) pushes one byte at a time. Their events must be
//! identical (whitespace/text runs coalesced, as the unit tests do), and on
//! every event: bytes match the stream at the unit's offsets, `frames` are
//! exactly the pushes overlapping the unit, `pending_bytes()` stays within
//! `max(max_element_bytes, 16)`, `offset()` follows the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use xmppscope::xmpp::framer::{Framer, FramerEvent, FramerLimits, FramerNote, UnitKind};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Unit {
        kind: UnitKind,
        bytes: Vec<u8>,
        start: u64,
        end: u64,
    },
    Note(FramerNote),
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Resync,
    Gap(u64),
}

struct Input<'a> {
    d: &'a [u8],
}

impl<'a> Input<'a> {
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
}

fn coalesce(evs: Vec<Ev>) -> Vec<Ev> {
    let mut out: Vec<Ev> = Vec::new();
    for ev in evs {
        if let (
            Some(Ev::Unit {
                kind: pk,
                bytes: pb,
                end: pe,
                ..
            }),
            Ev::Unit {
                kind,
                bytes,
                start,
                end,
            },
        ) = (out.last_mut(), &ev)
            && *pk == *kind
            && matches!(kind, UnitKind::Whitespace | UnitKind::Text)
            && *pe == *start
        {
            pb.extend_from_slice(bytes);
            *pe = *end;
            continue;
        }
        out.push(ev);
    }
    out
}

/// `segments[k]` is pushed (cut at `cuts[k]`, relative positions), then `ops[k]` applied.
fn run(
    limits: FramerLimits,
    segments: &[(&[u8], Option<Op>)],
    cuts: &dyn Fn(usize, &[u8]) -> Vec<usize>,
) -> Vec<Ev> {
    let mut f = Framer::new(limits);
    let mut evs = Vec::new();
    let mut stream: Vec<u8> = Vec::new();
    let mut pushes: Vec<(u64, u64, u64)> = Vec::new();
    let mut frame = 0u64;
    let bound = limits.max_element_bytes.max(16);
    for (k, (seg, op)) in segments.iter().enumerate() {
        let mut pts = cuts(k, seg);
        pts.push(0);
        pts.push(seg.len());
        pts.sort_unstable();
        pts.dedup();
        for w in pts.windows(2) {
            let chunk = &seg[w[0]..w[1]];
            frame += 1;
            let start = f.offset();
            stream.extend_from_slice(chunk);
            pushes.push((frame, start, start + chunk.len() as u64));
            let range = chunk.as_ptr_range();
            f.push(chunk, frame, &mut |ev| match ev {
                FramerEvent::Unit(u) => {
                    assert!(u.start <= u.end, "{u:?}");
                    assert_eq!(u.end - u.start, u.bytes.len() as u64, "{u:?}");
                    assert!(!u.bytes.is_empty(), "empty unit {u:?}");
                    assert_eq!(
                        &stream[u.start as usize..u.end as usize],
                        u.bytes,
                        "unit bytes differ from the stream"
                    );
                    let want: Vec<u64> = pushes
                        .iter()
                        .filter(|(_, s, e)| *s < u.end && *e > u.start)
                        .map(|(fr, _, _)| *fr)
                        .collect();
                    assert_eq!(u.frames, want.as_slice(), "frames of {u:?}");
                    if u.start >= start {
                        assert!(
                            range.contains(&u.bytes.as_ptr()),
                            "unit within one push must be zero-copy"
                        );
                    }
                    evs.push(Ev::Unit {
                        kind: u.kind,
                        bytes: u.bytes.to_vec(),
                        start: u.start,
                        end: u.end,
                    });
                }
                FramerEvent::Note(n) => {
                    assert!(n.start <= n.end, "{n:?}");
                    assert!(n.end <= stream.len() as u64, "note past the stream: {n:?}");
                    evs.push(Ev::Note(n));
                }
            });
            assert!(
                f.pending_bytes() <= bound,
                "pending {} > {bound}",
                f.pending_bytes()
            );
            assert_eq!(f.offset(), stream.len() as u64);
        }
        match op {
            Some(Op::Gap(n)) => {
                f.gap(*n, &mut |ev| match ev {
                    FramerEvent::Note(n) => evs.push(Ev::Note(n)),
                    FramerEvent::Unit(u) => panic!("gap() emitted a unit: {u:?}"),
                });
                stream.resize(stream.len() + *n as usize, 0);
                assert_eq!(f.pending_bytes(), 0);
                assert!(!f.in_unit());
                assert_eq!(f.offset(), stream.len() as u64);
            }
            Some(Op::Resync) => f.resync(),
            None => {}
        }
    }
    // End-of-capture queries must not panic either.
    let _ = (
        f.in_unit(),
        f.unit_start(),
        f.header_seen(),
        f.is_resyncing(),
    );
    f.reset();
    assert_eq!(f.offset(), 0);
    assert_eq!(f.pending_bytes(), 0);
    evs
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input { d: data };
    let flags = inp.u8();
    let (me, md) = (inp.u8(), inp.u8());
    let limits = if flags & 1 != 0 {
        FramerLimits {
            max_element_bytes: usize::from(me),
            max_depth: usize::from(md % 8),
        }
    } else {
        FramerLimits::default()
    };
    let ncuts = inp.u8() % 32;
    let cuts: Vec<usize> = (0..ncuts).map(|_| usize::from(inp.u16())).collect();
    let mut ops: Vec<(usize, Op)> = Vec::new();
    if flags & 2 != 0 {
        let nops = inp.u8() % 4;
        for _ in 0..nops {
            let pos = usize::from(inp.u16());
            let kind = inp.u8();
            let op = if kind == 0 {
                Op::Resync
            } else {
                Op::Gap(u64::from(kind))
            };
            ops.push((pos, op));
        }
    }
    let stream = inp.d;
    ops.iter_mut().for_each(|(p, _)| *p %= stream.len() + 1);
    ops.sort_by_key(|(p, _)| *p);

    let mut segments: Vec<(&[u8], Option<Op>)> = Vec::new();
    let mut at = 0usize;
    for &(p, op) in &ops {
        segments.push((&stream[at..p], Some(op)));
        at = p;
    }
    segments.push((&stream[at..], None));

    let whole = coalesce(run(limits, &segments, &|_, _| Vec::new()));
    // Absolute cut points over the whole stream, mapped into segments.
    let mut seg_starts = Vec::new();
    let mut acc = 0usize;
    for (s, _) in &segments {
        seg_starts.push(acc);
        acc += s.len();
    }
    let total = stream.len();
    let abs: Vec<usize> = cuts.iter().map(|&c| c % (total + 1)).collect();
    let split = coalesce(run(limits, &segments, &|k, seg: &[u8]| {
        let s0 = seg_starts[k];
        abs.iter()
            .filter(|&&c| c > s0 && c < s0 + seg.len())
            .map(|&c| c - s0)
            .collect()
    }));
    assert_eq!(split, whole, "split run differs from the whole run");
    if total <= 2048 {
        let bytewise = coalesce(run(limits, &segments, &|_, seg: &[u8]| {
            (1..seg.len()).collect()
        }));
        assert_eq!(
            bytewise, whole,
            "byte-at-a-time run differs from the whole run"
        );
    }
});

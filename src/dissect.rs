//! The dissector: frames in, packets with XMPP events out.
//!
//! Pure and single-threaded: bytes and timestamps in, model values out, no
//! I/O and no clock, so that the headless printers, the TUI, the tests and
//! the benchmarks all drive exactly the same code.
//!
//! ```text
//! frame ─ link::tcp_segment ─ flow table ─ tcp::HalfStream ─┬─ xmpp::framer ─ element ─ info ─ Event
//!                                                           └─ tls::TlsStream ───────────────── Event
//! ```

use std::collections::HashMap;
use std::net::IpAddr;

use std::sync::Arc;

use crate::keylog::KeyLog;
use crate::link::{self, LinkStop, addr_bits};
use crate::model::{Dir, Event, EventKind, Note, NoteKind, Packet, Tally, Timestamp};
use crate::tcp::reassembly::{Delivery, HalfStream, ReassemblyLimits, StreamNoteKind};
use crate::tls::{self, TlsEvent, TlsLimits, TlsNoteKind, TlsStream};
use crate::tlsdec::{DecOut, Decrypted, FlowDecrypt, Why};
use crate::xmpp::element::{self, Scope};
use crate::xmpp::framer::{Framer, FramerEvent, FramerLimits, FramerNoteKind, UnitKind};
use crate::xmpp::pairing::{self, IqTable};
use crate::xmpp::{self, FirstBytes, detail, info, lite};

/// Every named limit, with its default. Each is a flag of the binary.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Concurrent TCP flows tracked; past it the least recently seen tenth
    /// are evicted (with a note).
    pub max_flows: usize,
    /// A flow idle this long (capture time) is closed and its state freed.
    pub idle_timeout_secs: u64,
    pub tcp: ReassemblyLimits,
    pub framer: FramerLimits,
    pub tls: TlsLimits,
    /// Unanswered IQ requests remembered per flow (RFC 6120 §8.2.3
    /// pairing); past it the oldest is forgotten, with a note.
    pub max_pending_iqs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_flows: 100_000,
            idle_timeout_secs: 600,
            tcp: ReassemblyLimits::default(),
            framer: FramerLimits::default(),
            tls: TlsLimits::default(),
            max_pending_iqs: pairing::MAX_PENDING_IQS,
        }
    }
}

/// What the dissector is asked to do.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub limits: Limits,
    /// Extra ports to treat as XMPP (like Wireshark's decode-as).
    pub xmpp_ports: Vec<u16>,
    /// Only flows with one of these addresses on either side (empty: all).
    pub hosts: Vec<IpAddr>,
    /// Keep each event's XML text (NDJSON, `-V`, TUI).
    pub keep_xml: bool,
    /// Keep each event's parsed element tree.
    pub keep_tree: bool,
    /// Reveal SASL credentials instead of masking them.
    pub show_secrets: bool,
    /// Only the statistics are printed (`-q --stats`, see `cli.rs`): events
    /// carry what [`crate::output::stats::Stats`] reads and no more. Stanzas
    /// get no Info text, name, namespace, `id`, `from` or `to` (they are
    /// counted by [`crate::model::Facts`], and by `type`, which is in the
    /// facts when it is one the RFCs define), so no IQ response is linked
    /// back to its request (`response_in`); no event gets its `frames`; and
    /// keepalives, XML declarations, stream ends and TLS records no Info or
    /// name. On a large capture those strings were most of the allocations
    /// per element. Kinds, directions, facts and notes (texts too) are the
    /// same as in a full run. Stream headers and the other elements, a few
    /// per stream, stay whole. Off by default; not for printers of events.
    pub counts_only: bool,
    /// TLS secrets (`--keylog`, `SSLKEYLOGFILE`): TLS flows are decrypted and their XMPP
    /// shown. `None`: TLS records are only recognized.
    pub keylog: Option<Arc<KeyLog>>,
    /// For a dissector that sees one shard of the flows (the parallel run):
    /// flow ids are the numbers of the frames that opened them, so shards
    /// never share an id. `shards <= 1` means one dissector sees everything.
    pub shard: u32,
    pub shards: u32,
}

/// Counters the printers and `--stats` report.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub packets: u64,
    pub tcp_packets: u64,
    pub flows: u64,
    pub xmpp_flows: u64,
    pub tls_flows: u64,
    /// Flows whose server port is 5222.
    pub flows_5222: u64,
    pub flows_evicted: u64,
    pub flows_idle_closed: u64,
    pub max_concurrent_flows: usize,
}

impl Counters {
    /// Add another shard's counters (the parallel run).
    pub fn add(&mut self, o: &Self) {
        self.packets += o.packets;
        self.tcp_packets += o.tcp_packets;
        self.flows += o.flows;
        self.xmpp_flows += o.xmpp_flows;
        self.tls_flows += o.tls_flows;
        self.flows_5222 += o.flows_5222;
        self.flows_evicted += o.flows_evicted;
        self.flows_idle_closed += o.flows_idle_closed;
        self.max_concurrent_flows += o.max_concurrent_flows;
    }
}

/// Which of `shards` dissectors a frame belongs to: both directions of a
/// TCP connection go to the same one; anything else to shard 0. Cheap: the
/// link slicing is repeated by the dissector, the hash is a few multiplies.
#[must_use]
pub fn shard_of(linktype: i32, frame: &[u8], shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    let Some((a, b)) = link::tcp_end_bits(linktype, frame) else {
        return 0;
    };
    // The same for both directions (a sum of the two ends), with fixed
    // constants: the same flow always lands on the same shard. Keys chosen
    // to collide only make one shard busier, never wrong.
    let end = |(bits, port): link::EndBits| -> u64 {
        #[allow(clippy::cast_possible_truncation)] // folding the halves
        let folded = (bits as u64) ^ ((bits >> 64) as u64).rotate_left(29);
        (folded ^ (u64::from(port) << 48) ^ u64::from(port))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(31)
    };
    let mut v = end(a).wrapping_add(end(b));
    v ^= v >> 29;
    v = v.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    v ^= v >> 32;
    // Shard 0 also reads the capture (and takes what is not TCP), so it
    // gets fewer flows: of 1024 slots, every other shard `each` and shard 0
    // `each - READING_SHARE`.
    let n = u64::from(shards);
    let each = (1024 + READING_SHARE) / n;
    let first = each.saturating_sub(READING_SHARE);
    let slot = v % 1024;
    let shard = if slot < first {
        0
    } else {
        (1 + (slot - first) / each.max(1)).min(n - 1)
    };
    u32::try_from(shard).unwrap_or(0)
}

/// The reading shard's extra work (reading and tagging every frame, the
/// frames that are not TCP) in 1024ths of all the dissection: set so that
/// both shards spend the same CPU time on the generated 1 GB capture, read
/// from each thread's `/proc/<pid>/task/<tid>/stat` (`bench/RESULTS.md`,
/// seventh session: 210, set when a frame cost more to dissect, left the
/// other shard a median 6 % busier).
pub const READING_SHARE: u64 = 170;

#[cfg(test)]
mod shard_tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn frame(a: [u8; 4], sport: u16, b: [u8; 4], dport: u16) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(a, b, 64)
            .tcp(sport, dport, 1, 1000)
            .write(&mut out, b"<presence/>")
            .unwrap();
        out
    }

    /// Both directions of a flow go to one shard; every shard gets flows,
    /// the reading shard (0) its smaller share.
    #[test]
    fn flows_spread_over_the_shards_by_share() {
        let en = crate::link::dlt::EN10MB;
        for shards in [2u32, 3, 4] {
            let mut counts = vec![0u64; shards as usize];
            for i in 0..20_000u16 {
                let c = [10, 0, (i >> 8) as u8, i as u8];
                let s = [192, 0, 2, 1];
                let there = shard_of(en, &frame(c, 1024 + i, s, 5222), shards);
                let back = shard_of(en, &frame(s, 5222, c, 1024 + i), shards);
                assert_eq!(there, back);
                counts[there as usize] += 1;
            }
            let each = (1024 + READING_SHARE) / u64::from(shards);
            let want0 = (each - READING_SHARE) as f64 / 1024.0;
            let got0 = counts[0] as f64 / 20_000.0;
            assert!((got0 - want0).abs() < 0.02, "{shards} shards: {counts:?}");
            assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
        }
        // Not TCP: the first shard.
        assert_eq!(shard_of(en, &[0u8; 20], 2), 0);
    }
}

#[cfg(test)]
mod utf8_tests {
    use super::*;

    /// Stepping through a delivery unit by unit, as the fast reader and the
    /// framer take turns: each answer is the valid prefix from there, and
    /// every byte is checked about once, however many units (before, each
    /// step checked the whole rest).
    #[test]
    fn valid_from_checks_each_byte_once() {
        for unit in [&b"<a>\xff</a><b/>"[..], b"<!----><c/>", b"<d>\xc3\xa9</d>"] {
            let bytes = unit.repeat(2000);
            UTF8_READ.with(|r| r.set(0));
            let mut checked = None;
            let mut at = 0;
            while at < bytes.len() {
                let t = valid_from(&bytes, at, &mut checked);
                assert_eq!(t, lite::utf8_prefix(&bytes[at..]), "at {at}");
                at += unit.len();
            }
            let read = UTF8_READ.with(std::cell::Cell::get);
            assert!(
                read <= 2 * bytes.len(),
                "{read} bytes checked for {}",
                bytes.len()
            );
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    a: (IpAddr, u16),
    b: (IpAddr, u16),
}

/// Three integer writes instead of the derived field-by-field hashing
/// (looked up for every TCP frame). Equal keys hash equally.
impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u128(addr_bits(self.a.0));
        h.write_u128(addr_bits(self.b.0));
        h.write_u32((u32::from(self.a.1) << 16) | u32::from(self.b.1));
    }
}

/// An endpoint as integers that order as the endpoint does (IPv4 before
/// IPv6, then the address, then the port: the derived order), compared
/// without the derived field-by-field chain.
fn endpoint_order((ip, port): (IpAddr, u16)) -> (bool, u128, u16) {
    (ip.is_ipv6(), addr_bits(ip), port)
}

impl FlowKey {
    fn new(src: (IpAddr, u16), dst: (IpAddr, u16)) -> Self {
        if endpoint_order(src) <= endpoint_order(dst) {
            Self { a: src, b: dst }
        } else {
            Self { a: dst, b: src }
        }
    }
}

#[cfg(test)]
mod flow_key_tests {
    use super::*;

    /// The integer order of endpoints is the derived one, so each flow has
    /// one key whichever way its frames go.
    #[test]
    fn endpoint_order_is_the_derived_order() {
        let ips: Vec<IpAddr> = [
            "0.0.0.0",
            "10.0.0.1",
            "10.0.0.2",
            "192.168.1.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
            "fe80::1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let ends: Vec<(IpAddr, u16)> = ips
            .iter()
            .flat_map(|&ip| [0u16, 5222, 65535].map(|p| (ip, p)))
            .collect();
        for &x in &ends {
            for &y in &ends {
                assert_eq!(
                    endpoint_order(x).cmp(&endpoint_order(y)),
                    x.cmp(&y),
                    "{x:?} {y:?}"
                );
                assert_eq!(FlowKey::new(x, y), FlowKey::new(y, x));
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing seen yet in this direction.
    Undecided,
    Xml,
    Tls,
    /// STARTTLS proceeded: the next bytes should be TLS.
    TlsPending,
    /// Compressed (XEP-0138) or otherwise unreadable from here on.
    Opaque,
    /// Not XMPP: ignored.
    Other,
}

struct Half {
    tcp: HalfStream,
    mode: Mode,
    framer: Option<Box<Framer>>,
    tls: Option<Box<TlsStream>>,
    /// Namespace declarations of the current stream header.
    scope: Scope,
    /// XMPP framer and scope of the decrypted stream (restarted after TLS).
    dec_framer: Option<Box<Framer>>,
    dec_scope: Scope,
}

impl Half {
    fn new(limits: &Limits) -> Self {
        Self {
            tcp: HalfStream::new(limits.tcp),
            mode: Mode::Undecided,
            framer: None,
            tls: None,
            scope: Scope::default(),
            dec_framer: None,
            dec_scope: Scope::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// On an XMPP port: XMPP unless its bytes say otherwise.
    PortXmpp,
    /// On a direct-TLS XMPP port.
    PortTls,
    /// Any other port: XMPP only if a Jabber stream opens.
    Unknown,
    /// Decided: XMPP (or TLS-wrapped XMPP).
    Xmpp,
    /// Decided: not ours.
    Other,
}

struct Flow {
    id: u32,
    client: (IpAddr, u16),
    server: (IpAddr, u16),
    class: Class,
    last_seen: Timestamp,
    last_frame: u64,
    halves: [Half; 2],
    starttls_seen: bool,
    tls_noted: bool,
    /// TLS decryption state (only with a key log).
    dec: Option<Box<FlowDecrypt>>,
    /// SASL mechanism of the last `<auth/>` (to decode challenges/responses).
    sasl_mech: Option<Box<str>>,
    /// IQ requests waiting for their response.
    iqs: IqTable,
    /// FIN or RST seen in each direction.
    closed: [bool; 2],
    rst: bool,
}

/// Where the events of one delivery go, and what they are attributed to.
struct Ctx<'a> {
    frame: u64,
    ts: Timestamp,
    flow: u32,
    dir: Dir,
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    cfg: &'a Config,
    events: &'a mut Vec<Event>,
    /// Where a counts-only dissector's stanzas go ([`Tally`]); `None`
    /// otherwise, and for flows flushed outside a frame (events then).
    tallies: Option<&'a mut Vec<Tally>>,
    notes: &'a mut Vec<Note>,
}

/// The dissector. Create one per capture.
pub struct Dissector {
    cfg: Config,
    /// foldhash's randomly seeded hasher: fast on 4-tuples, and the seed
    /// keeps strangers from choosing colliding keys.
    flows: HashMap<FlowKey, Flow, foldhash::fast::RandomState>,
    next_flow: u32,
    counters: Counters,
    next_sweep: i64,
    /// Events flushed from flows evicted or closed by the idle timeout,
    /// and at the end of the capture: they belong to earlier frames.
    flushed: Vec<Event>,
    flushed_notes: Vec<Note>,
    /// The parallel run's bookkeeping (see [`Self::take_table_changes`]).
    changes: TableChanges,
}

/// How one frame changed a sharded dissector's flow table, for the merge of
/// the shards' outputs (global flow numbers, flows open at once).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TableChanges {
    /// The flow created by the frame (its id: the frame's number).
    pub created: Option<u32>,
    /// The table's size right after that creation.
    pub len_after_insert: Option<u32>,
    /// Flows closed (idle, evicted, reused, end of capture), in order.
    pub closed: Vec<u32>,
}

impl Dissector {
    #[must_use]
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg,
            flows: HashMap::default(),
            next_flow: 0,
            counters: Counters::default(),
            next_sweep: i64::MIN,
            flushed: Vec::new(),
            flushed_notes: Vec::new(),
            changes: TableChanges::default(),
        }
    }

    fn sharded(&self) -> bool {
        self.cfg.shards > 1
    }

    /// Flows in the table now.
    #[must_use]
    pub fn flows_len(&self) -> usize {
        self.flows.len()
    }

    /// What the frames since the last call did to the flow table (kept only
    /// when sharded: `cfg.shards > 1`).
    pub fn take_table_changes(&mut self) -> TableChanges {
        std::mem::take(&mut self.changes)
    }

    /// A frame of another shard went by: close idle flows when the
    /// frame's time says so, exactly as [`Self::dissect`] would have on
    /// seeing it, so that every shard sweeps at the same frames as one
    /// dissector does.
    pub fn tick(&mut self, number: u64, ts: Timestamp) {
        if self.sweep_due(ts) {
            self.sweep_idle(ts, number);
        }
    }

    /// Would a frame at `ts` start the idle sweep? When not, another
    /// shard's frame changes nothing here.
    #[must_use]
    pub fn sweep_due(&self, ts: Timestamp) -> bool {
        ts.secs >= self.next_sweep
    }

    #[must_use]
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Replace the key log (live capture: the file grew). Records of a flow held for a
    /// missing key are decrypted when that flow's next record arrives.
    pub fn set_keylog(&mut self, keylog: Arc<KeyLog>) {
        self.cfg.keylog = Some(keylog);
    }

    #[must_use]
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Open flows right now.
    #[must_use]
    pub fn open_flows(&self) -> usize {
        self.flows.len()
    }

    /// Bytes held by all flows right now: out-of-order TCP data and
    /// partial XML elements (what the named limits bound). O(flows).
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        self.flows
            .values()
            .flat_map(|f| f.halves.iter())
            .map(|h| {
                h.tcp.buffered_bytes()
                    + h.framer.as_ref().map_or(0, |f| f.pending_bytes())
                    + h.tls.as_ref().map_or(0, |t| t.buffered_bytes())
            })
            .sum()
    }

    /// Whether [`Self::take_flushed`] has anything.
    #[must_use]
    pub fn has_flushed(&self) -> bool {
        !self.flushed.is_empty() || !self.flushed_notes.is_empty()
    }

    /// Events and notes that left the pipeline outside a frame of their own
    /// (flows evicted, idle, or still open at the end).
    pub fn take_flushed(&mut self) -> (Vec<Event>, Vec<Note>) {
        (
            std::mem::take(&mut self.flushed),
            std::mem::take(&mut self.flushed_notes),
        )
    }

    /// Dissect one frame into `out` (which is reset first).
    pub fn dissect(
        &mut self,
        number: u64,
        ts: Timestamp,
        linktype: i32,
        data: &[u8],
        wire_len: u32,
        out: &mut Packet,
    ) {
        out.reset();
        out.number = number;
        out.ts = ts;
        out.len = wire_len;
        out.caplen = u32::try_from(data.len()).unwrap_or(u32::MAX);
        self.counters.packets += 1;
        if ts.secs >= self.next_sweep {
            self.sweep_idle(ts, number);
        }
        let seg = match link::tcp_segment(linktype, data) {
            Ok(seg) => seg,
            Err(stop) => {
                if let LinkStop::Malformed { .. } = stop {
                    out.notes
                        .push(Note::new(NoteKind::MalformedFrame, stop.to_string()));
                } else if stop == LinkStop::Fragment {
                    out.notes
                        .push(Note::new(NoteKind::IpFragment, stop.to_string()));
                }
                return;
            }
        };
        out.src = Some(seg.src);
        out.dst = Some(seg.dst);
        out.sport = seg.sport;
        out.dport = seg.dport;
        if !self.cfg.hosts.is_empty()
            && !self
                .cfg
                .hosts
                .iter()
                .any(|h| *h == seg.src || *h == seg.dst)
        {
            return;
        }
        self.counters.tcp_packets += 1;
        let src = (seg.src, seg.sport);
        let dst = (seg.dst, seg.dport);
        let key = FlowKey::new(src, dst);

        // A new SYN on a finished connection starts a new flow (port reuse),
        // as Wireshark gives it a new tcp.stream.
        let reuse = seg.syn
            && !seg.has_ack
            && self
                .flows
                .get(&key)
                .is_some_and(|f| f.rst || f.closed.iter().all(|c| *c));
        if reuse {
            self.close_flow(&key, number);
        }
        // One lookup for a known flow (nearly every frame), one more to
        // insert a new one.
        if let Some(flow) = self.flows.get_mut(&key) {
            Self::segment_in_flow(flow, &self.cfg, &mut self.counters, &seg, out);
            return;
        }
        if self.flows.len() >= self.cfg.limits.max_flows {
            self.evict_oldest(number, &mut out.notes);
        }
        let flow = self.new_flow(src, dst, seg.syn, seg.has_ack, number);
        let len = self.flows.len() + 1;
        self.counters.max_concurrent_flows = self.counters.max_concurrent_flows.max(len);
        if self.sharded() {
            self.changes.created = Some(flow.id);
            self.changes.len_after_insert = Some(u32::try_from(len).unwrap_or(u32::MAX));
        }
        let flow = self.flows.entry(key).insert_entry(flow).into_mut();
        Self::segment_in_flow(flow, &self.cfg, &mut self.counters, &seg, out);
    }

    /// The part of [`Self::dissect`] past the flow lookup: one TCP
    /// segment of a known flow, in the frame `out` (numbered and stamped).
    fn segment_in_flow(
        flow: &mut Flow,
        cfg: &Config,
        counters: &mut Counters,
        seg: &link::TcpSegment<'_>,
        out: &mut Packet,
    ) {
        let (number, ts, src) = (out.number, out.ts, (seg.src, seg.sport));
        flow.last_seen = ts;
        flow.last_frame = number;
        let dir = if src == flow.client {
            Dir::ClientToServer
        } else {
            Dir::ServerToClient
        };
        out.flow = Some(flow.id);
        out.dir = Some(dir);
        if seg.fin || seg.rst {
            flow.closed[dir.index()] = true;
        }
        if seg.rst {
            flow.rst = true;
        }
        if flow.class == Class::Other {
            return;
        }
        let mut sink = Sink {
            cfg,
            counters,
            frame: number,
            ts,
            events: &mut out.events,
            tallies: cfg.counts_only.then_some(&mut out.tallies),
            notes: &mut out.notes,
        };
        let other = dir.other();
        if flow.dec.is_some() {
            release_held(flow, sink.reborrow());
        }
        // The ACK speaks of the other direction's bytes: acknowledged bytes
        // that were never captured are skipped at once (RFC 9293 §3.4).
        let unseen = seg.has_ack
            && flow.halves[other.index()].tcp.acks_unseen(seg.ack)
            && with_half(flow, other, sink.reborrow(), |tcp, deliver| {
                tcp.acked(seg.ack, deliver)
            });
        with_half(flow, dir, sink.reborrow(), |tcp, deliver| {
            tcp.segment(
                seg.seq,
                seg.syn,
                seg.fin,
                seg.payload,
                seg.wire_len,
                number,
                deliver,
            );
            // A reset ends the connection; and when this very segment acks
            // bytes the capture never saw, the capture lost packets here,
            // so a hole in this direction will not be filled either.
            if seg.rst || (unseen && tcp.holes() > 0) {
                tcp.flush(deliver);
            }
        });
    }

    /// End of capture: flush every flow (held data after holes, open
    /// elements); the events land in [`Self::take_flushed`].
    pub fn finish(&mut self, last_frame: u64) {
        // In the order the flows were opened (the table's own order is
        // random), so that the output is the same from run to run.
        let mut keys: Vec<(u32, FlowKey)> = self.flows.iter().map(|(k, f)| (f.id, *k)).collect();
        keys.sort_unstable_by_key(|(id, _)| *id);
        for (_, key) in keys {
            self.close_flow(&key, last_frame);
        }
    }

    fn new_flow(
        &mut self,
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
        syn: bool,
        ack: bool,
        frame: u64,
    ) -> Flow {
        let is_xmpp_port =
            |p: u16| p == xmpp::PORT_C2S || p == xmpp::PORT_S2S || self.cfg.xmpp_ports.contains(&p);
        let is_tls_port = |p: u16| p == xmpp::PORT_C2S_TLS || p == xmpp::PORT_S2S_TLS;
        let known = |p: u16| is_xmpp_port(p) || is_tls_port(p);
        // Who opened the connection: the SYN's sender; failing that the
        // side not on a well-known port; failing that the higher port.
        let (client, server) = if syn && !ack {
            (src, dst)
        } else if syn && ack {
            (dst, src)
        } else if known(dst.1) && !known(src.1) {
            (src, dst)
        } else if known(src.1) && !known(dst.1) {
            (dst, src)
        } else if src.1 >= dst.1 {
            (src, dst)
        } else {
            (dst, src)
        };
        let class = if is_xmpp_port(server.1) || is_xmpp_port(client.1) {
            Class::PortXmpp
        } else if is_tls_port(server.1) {
            Class::PortTls
        } else {
            Class::Unknown
        };
        // One dissector numbers its flows 0, 1, 2, … in the order they
        // open; a shard of the parallel run uses the opening frame's number
        // (unique, and in the same order), which the merge maps back to
        // 0, 1, 2, … (run.rs, `parallel`).
        let id = if self.sharded() {
            u32::try_from(frame).unwrap_or(u32::MAX)
        } else {
            self.next_flow
        };
        self.next_flow = self.next_flow.wrapping_add(1);
        self.counters.flows += 1;
        if server.1 == xmpp::PORT_C2S {
            self.counters.flows_5222 += 1;
        }
        let limits = &self.cfg.limits;
        Flow {
            id,
            client,
            server,
            class,
            last_seen: Timestamp::default(),
            last_frame: 0,
            halves: [Half::new(limits), Half::new(limits)],
            starttls_seen: false,
            tls_noted: false,
            dec: None,
            sasl_mech: None,
            iqs: IqTable::default(),
            closed: [false; 2],
            rst: false,
        }
    }

    /// Flush and forget one flow; its late events go to `flushed`.
    fn close_flow(&mut self, key: &FlowKey, frame: u64) {
        let Some(mut flow) = self.flows.remove(key) else {
            return;
        };
        if self.sharded() {
            self.changes.closed.push(flow.id);
        }
        if flow.class == Class::Other {
            return;
        }
        let first_note = self.flushed_notes.len();
        for dir in [Dir::ClientToServer, Dir::ServerToClient] {
            self.flush_half(&mut flow, dir, frame);
        }
        for p in flow.iqs.drain() {
            self.flushed_notes.push(Note::on_flow(
                NoteKind::IqWithoutResponse,
                flow.id,
                format!(
                    "flow {} {}: {} (id '{}') in frame {} got no response",
                    flow.id,
                    p.dir.as_str(),
                    p.what,
                    p.id,
                    p.frame
                ),
            ));
        }
        if self.sharded() {
            // The merge of the shards orders notes by flow.
            for n in self.flushed_notes.iter_mut().skip(first_note) {
                n.flow.get_or_insert(flow.id);
            }
        }
    }

    fn flush_half(&mut self, flow: &mut Flow, dir: Dir, frame: u64) {
        let sink = Sink {
            cfg: &self.cfg,
            counters: &mut self.counters,
            frame,
            ts: flow.last_seen,
            events: &mut self.flushed,
            tallies: None,
            notes: &mut self.flushed_notes,
        };
        with_half(flow, dir, sink, |tcp, deliver| tcp.flush(deliver));
        let half = &flow.halves[dir.index()];
        if let Some(f) = half.framer.as_ref().filter(|f| f.in_unit()) {
            self.flushed_notes.push(Note::on_flow(
                NoteKind::IncompleteElement,
                flow.id,
                format!(
                    "flow {} {}: an element of {} bytes was still open at the end",
                    flow.id,
                    dir.as_str(),
                    f.pending_bytes()
                ),
            ));
        }
    }

    fn evict_oldest(&mut self, frame: u64, notes: &mut Vec<Note>) {
        // Evict the least recently seen tenth at once, so that a flood of
        // new flows costs O(1) amortised per flow, not a scan per flow.
        let n = (self.flows.len() / 10).max(1);
        let mut ages: Vec<(u64, FlowKey)> =
            self.flows.iter().map(|(k, f)| (f.last_frame, *k)).collect();
        if n < ages.len() {
            ages.select_nth_unstable_by_key(n, |(f, _)| *f);
            ages.truncate(n);
        }
        // Least recently seen first (a frame belongs to one flow: no ties).
        ages.sort_unstable_by_key(|(f, _)| *f);
        for (_, key) in &ages {
            self.close_flow(key, frame);
        }
        self.counters.flows_evicted += ages.len() as u64;
        notes.push(Note::new(
            NoteKind::LimitFlows,
            format!(
                "flow table full (--max-flows {}): evicted the {} least recently seen flows",
                self.cfg.limits.max_flows,
                ages.len()
            ),
        ));
    }

    fn sweep_idle(&mut self, now: Timestamp, frame: u64) {
        let timeout = i64::try_from(self.cfg.limits.idle_timeout_secs).unwrap_or(i64::MAX);
        // Sweep at most once per tenth of the timeout (at least each second).
        self.next_sweep = now.secs.saturating_add((timeout / 10).max(1));
        let mut idle: Vec<(u32, FlowKey)> = self
            .flows
            .iter()
            .filter(|(_, f)| now.secs.saturating_sub(f.last_seen.secs) > timeout)
            .map(|(k, f)| (f.id, *k))
            .collect();
        // Oldest flow first, not the table's random order.
        idle.sort_unstable_by_key(|(id, _)| *id);
        for (_, key) in &idle {
            self.close_flow(key, frame);
        }
        self.counters.flows_idle_closed += idle.len() as u64;
    }
}

/// Where one frame's deliveries go.
struct Sink<'a> {
    cfg: &'a Config,
    counters: &'a mut Counters,
    frame: u64,
    ts: Timestamp,
    events: &'a mut Vec<Event>,
    tallies: Option<&'a mut Vec<Tally>>,
    notes: &'a mut Vec<Note>,
}

impl Sink<'_> {
    fn reborrow(&mut self) -> Sink<'_> {
        Sink {
            cfg: self.cfg,
            counters: self.counters,
            frame: self.frame,
            ts: self.ts,
            events: self.events,
            tallies: self.tallies.as_deref_mut(),
            notes: self.notes,
        }
    }
}

/// Run `f` on one direction's reassembler with a sink that feeds its bytes
/// through the XMPP/TLS layers into `sink`.
fn with_half<R>(
    flow: &mut Flow,
    dir: Dir,
    sink: Sink<'_>,
    f: impl FnOnce(&mut HalfStream, &mut dyn FnMut(Delivery<'_>)) -> R,
) -> R {
    with_half_state(flow, dir, sink, |tcp, ctx, stream, st| {
        f(tcp, &mut |d| deliver(d, ctx, stream, st))
    })
}

/// Decrypt the records held for a key that the key log now has (live
/// capture: the client appends its secrets after its first records were
/// captured), so that they show now, both directions interleaved in
/// capture order, rather than when each direction next sends a record.
fn release_held(flow: &mut Flow, mut sink: Sink<'_>) {
    let Some(keylog) = sink.cfg.keylog.clone() else {
        return;
    };
    // Directions whose key is still missing are left alone.
    let mut stuck = [false; 2];
    loop {
        let Some(dec) = flow.dec.as_ref() else { return };
        let next = |c2s: bool, stuck: bool| {
            if stuck { None } else { dec.next_held(c2s) }
        };
        let dir = match (next(true, stuck[0]), next(false, stuck[1])) {
            (Some(a), Some(b)) if b < a => Dir::ServerToClient,
            (Some(_), _) => Dir::ClientToServer,
            (None, Some(_)) => Dir::ServerToClient,
            (None, None) => return,
        };
        let c2s = dir == Dir::ClientToServer;
        let released = with_half_state(flow, dir, sink.reborrow(), |_, ctx, s, st| {
            let mut outs = Vec::new();
            let ok = st
                .dec
                .as_mut()
                .is_some_and(|dec| dec.release_one(c2s, &keylog, &mut outs));
            for o in outs {
                apply_decrypted(o, None, ctx, s, st);
            }
            ok
        });
        if !released {
            stuck[usize::from(!c2s)] = true;
        }
    }
}

/// Run `f` with one direction's reassembler and the state its bytes go
/// through.
fn with_half_state<R>(
    flow: &mut Flow,
    dir: Dir,
    sink: Sink<'_>,
    f: impl FnOnce(&mut HalfStream, &mut Ctx<'_>, &mut StreamState<'_>, &mut FlowState<'_>) -> R,
) -> R {
    let (src, dst) = match dir {
        Dir::ClientToServer => (flow.client, flow.server),
        Dir::ServerToClient => (flow.server, flow.client),
    };
    let mut ctx = Ctx {
        frame: sink.frame,
        ts: sink.ts,
        flow: flow.id,
        dir,
        src,
        dst,
        cfg: sink.cfg,
        events: sink.events,
        tallies: sink.tallies,
        notes: sink.notes,
    };
    let [h0, h1] = &mut flow.halves;
    let (this, other) = match dir {
        Dir::ClientToServer => (h0, h1),
        Dir::ServerToClient => (h1, h0),
    };
    let mut st = FlowState {
        class: &mut flow.class,
        starttls_seen: &mut flow.starttls_seen,
        tls_noted: &mut flow.tls_noted,
        dec: &mut flow.dec,
        sasl_mech: &mut flow.sasl_mech,
        iqs: &mut flow.iqs,
        counters: sink.counters,
        server_port: flow.server.1,
        other_mode: &mut other.mode,
    };
    let Half {
        tcp,
        mode,
        framer,
        tls,
        scope,
        dec_framer,
        dec_scope,
    } = this;
    let mut stream = StreamState {
        mode,
        framer,
        tls,
        scope,
        dec_framer,
        dec_scope,
    };
    f(tcp, &mut ctx, &mut stream, &mut st)
}

struct FlowState<'a> {
    class: &'a mut Class,
    starttls_seen: &'a mut bool,
    tls_noted: &'a mut bool,
    dec: &'a mut Option<Box<FlowDecrypt>>,
    sasl_mech: &'a mut Option<Box<str>>,
    iqs: &'a mut IqTable,
    counters: &'a mut Counters,
    server_port: u16,
    other_mode: &'a mut Mode,
}

struct StreamState<'a> {
    mode: &'a mut Mode,
    framer: &'a mut Option<Box<Framer>>,
    tls: &'a mut Option<Box<TlsStream>>,
    scope: &'a mut Scope,
    dec_framer: &'a mut Option<Box<Framer>>,
    dec_scope: &'a mut Scope,
}

fn deliver(d: Delivery<'_>, ctx: &mut Ctx<'_>, s: &mut StreamState<'_>, st: &mut FlowState<'_>) {
    match d {
        Delivery::Data {
            bytes,
            frame,
            offset,
        } => data(bytes, frame, offset, ctx, s, st),
        Delivery::Gap { len, offset } => {
            if *s.mode == Mode::Other {
                return;
            }
            ctx.notes.push(Note::new(
                NoteKind::TcpGap,
                format!(
                    "{len} bytes of the {} stream were not captured (offset {offset}); resynchronising",
                    ctx.dir.as_str()
                ),
            ));
            let mut sink = |ev: FramerEvent<'_>| {
                framer_event(ev, ctx, s.scope, st, false);
            };
            if let Some(f) = s.framer.as_mut() {
                f.gap(len, &mut sink);
            }
            if let Some(t) = s.tls.as_mut() {
                t.gap(len, &mut |ev| tls_event(ev, ctx));
            }
            if let Some(dec) = st.dec.as_mut() {
                let mut outs = Vec::new();
                dec.gap(ctx.dir == Dir::ClientToServer, &mut outs);
                for o in outs {
                    apply_decrypted(o, None, ctx, s, st);
                }
            }
        }
        Delivery::Fin { .. } => {}
        Delivery::Note {
            kind, offset, len, ..
        } => {
            let (k, text) = match kind {
                StreamNoteKind::Retransmission => (
                    NoteKind::TcpRetransmission,
                    format!("retransmission of {len} bytes at offset {offset}"),
                ),
                StreamNoteKind::OverlapConflict => (
                    NoteKind::TcpOverlapConflict,
                    format!(
                        "retransmitted bytes at offset {offset} differ from the first copy (first copy kept)"
                    ),
                ),
                StreamNoteKind::OutOfOrder => (
                    NoteKind::TcpOutOfOrder,
                    format!("out-of-order segment held ({len} bytes at offset {offset})"),
                ),
                StreamNoteKind::BufferLimit => (
                    NoteKind::LimitTcpBuffer,
                    "out-of-order bytes exceeded --max-tcp-buffer: skipped the oldest hole".into(),
                ),
                StreamNoteKind::HoleLimit => (
                    NoteKind::LimitTcpHoles,
                    "holes exceeded --max-tcp-holes: skipped the oldest hole".into(),
                ),
                StreamNoteKind::DataAfterFin => (
                    NoteKind::TcpDataAfterFin,
                    format!("{len} bytes after the FIN"),
                ),
                StreamNoteKind::KeepAlive => (
                    NoteKind::TcpKeepAlive,
                    format!("TCP keep-alive at offset {offset}"),
                ),
                StreamNoteKind::OutOfWindow => (
                    NoteKind::TcpOutOfWindow,
                    format!(
                        "segment more than 2^31 bytes away from the stream ({len} bytes): dropped"
                    ),
                ),
                StreamNoteKind::TruncatedSegment => (
                    NoteKind::TcpTruncated,
                    format!("segment cut by the snaplen: {len} bytes missing"),
                ),
            };
            ctx.notes.push(Note::new(k, text));
        }
    }
}

/// In-order bytes of one direction.
fn data(
    bytes: &[u8],
    frame: u64,
    offset: u64,
    ctx: &mut Ctx<'_>,
    s: &mut StreamState<'_>,
    st: &mut FlowState<'_>,
) {
    if bytes.is_empty() {
        return;
    }
    if *s.mode == Mode::Undecided {
        if xmpp::sniff(bytes) == FirstBytes::Whitespace {
            // A keepalive before anything else (a capture that began
            // mid-session): count it on an XMPP port, decide later.
            if matches!(*st.class, Class::PortXmpp | Class::Xmpp) && bytes.len() <= 16 {
                let end = offset + bytes.len() as u64;
                let mut e = new_event(ctx, EventKind::Keepalive, &[frame], offset, end);
                if !ctx.cfg.counts_only {
                    e.info = "Whitespace Keepalive".into();
                }
                ctx.events.push(e);
            }
            return;
        }
        decide(bytes, ctx, s, st);
    }
    if *s.mode == Mode::TlsPending {
        // After <proceed/>: TLS if it looks like TLS (RFC 6120 §5.4.3.3),
        // otherwise the peer kept talking XML.
        *s.mode = if tls::looks_like_tls(bytes) {
            Mode::Tls
        } else {
            Mode::Xml
        };
    }
    match *s.mode {
        Mode::Xml => {
            let ws_only = bytes.len() <= 16 && bytes.iter().all(u8::is_ascii_whitespace);
            let framer = s
                .framer
                .get_or_insert_with(|| Box::new(Framer::new(ctx.cfg.limits.framer)));
            let mut switch_to_tls = false;
            let mut compressed = false;
            let mut rest = bytes;
            // The delivery's valid UTF-8, checked once: from `.0` on, `.1`.
            let mut checked: Option<(usize, &str)> = None;
            // Whole plain elements are cut and read in one pass here (the
            // usual case); the framer cuts the others (split across
            // segments, unusual, too big, headers …) and hands back once it
            // is between units again. After an element that changes the
            // stream, the framer takes the rest, as before.
            while !rest.is_empty() {
                if !ws_only && !switch_to_tls && !compressed && framer.at_top() {
                    let text = valid_from(bytes, bytes.len() - rest.len(), &mut checked);
                    let done = fast_units(rest, text, frame, framer, ctx, s.scope, st);
                    rest = rest.get(done.len..).unwrap_or_default();
                    switch_to_tls |= done.after == After::Tls;
                    compressed |= done.after == After::Compressed;
                }
                let mut sink = |ev: FramerEvent<'_>| {
                    let r = framer_event(ev, ctx, s.scope, st, ws_only);
                    switch_to_tls |= r == After::Tls;
                    compressed |= r == After::Compressed;
                };
                let n = if ws_only {
                    framer.push(rest, frame, &mut sink);
                    rest.len()
                } else {
                    framer.push_until_top(rest, frame, &mut sink)
                };
                rest = rest.get(n..).unwrap_or_default();
            }
            if switch_to_tls {
                *s.mode = Mode::TlsPending;
                *st.other_mode = Mode::TlsPending;
                *s.framer = None;
            }
            if compressed {
                *s.mode = Mode::Opaque;
                *st.other_mode = Mode::Opaque;
                ctx.notes.push(Note::new(
                    NoteKind::Compressed,
                    "stream compression (XEP-0138) started: the rest of this flow is not decoded",
                ));
            }
        }
        Mode::Tls => {
            if !*st.starttls_seen
                && !*st.tls_noted
                && st.server_port != xmpp::PORT_C2S_TLS
                && st.server_port != xmpp::PORT_S2S_TLS
            {
                *st.tls_noted = true;
                ctx.notes.push(Note::new(
                    NoteKind::TlsWithoutStarttls,
                    "TLS on an XMPP port without a STARTTLS in the capture (it began mid-session)",
                ));
            }
            let t = s.tls.get_or_insert_with(|| {
                Box::new(TlsStream::with_offset(ctx.cfg.limits.tls, offset))
            });
            if let Some(keylog) = ctx.cfg.keylog.clone() {
                let mut tevs = Vec::new();
                t.push(bytes, &mut |ev| tevs.push(ev));
                let dec = st.dec.get_or_insert_with(|| Box::new(FlowDecrypt::new()));
                dec.observe(&tevs);
                let mut outs = Vec::new();
                let c2s = ctx.dir == Dir::ClientToServer;
                dec.push(c2s, bytes, offset, frame, &keylog, &mut outs);
                emit_decrypted(tevs, outs, ctx, s, st);
            } else {
                t.push(bytes, &mut |ev| tls_event(ev, ctx));
            }
        }
        Mode::Undecided | Mode::TlsPending | Mode::Opaque | Mode::Other => {}
    }
}

/// The valid UTF-8 prefix of `bytes[at..]`. The fast reader asks for it
/// each time the framer hands back, further into the same delivery: the
/// delivery is checked once (`checked`: from where, what), and again only
/// past invalid bytes, up to the next ones. Checking the whole rest each
/// time cost the number of units times the delivery's length (found with
/// thousands of small units the fast reader leaves to the framer).
fn valid_from<'b>(bytes: &'b [u8], at: usize, checked: &mut Option<(usize, &'b str)>) -> &'b str {
    let rest = bytes.get(at..).unwrap_or_default();
    #[cfg(test)]
    let rest = {
        // What a check reads: up to the first invalid byte, or all.
        let t = lite::utf8_prefix_to_error(rest).len();
        let read = rest.len().min(t + 1);
        let stale = checked
            .is_none_or(|(base, text)| at.checked_sub(base).and_then(|o| text.get(o..)).is_none());
        if stale {
            UTF8_READ.with(|r| r.set(r.get() + read));
        }
        rest
    };
    match *checked {
        // Units end at `>`, a character boundary: `get` finds it; past the
        // first invalid byte it finds nothing.
        Some((base, text)) => {
            if let Some(t) = at.checked_sub(base).and_then(|o| text.get(o..)) {
                return t;
            }
            let t = lite::utf8_prefix_to_error(rest);
            *checked = Some((at, t));
            t
        }
        None => {
            let t = lite::utf8_prefix(rest);
            *checked = Some((at, t));
            t
        }
    }
}

// Bytes `valid_from` had checked (tests only).
#[cfg(test)]
thread_local! {
    static UTF8_READ: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// What [`fast_units`] consumed.
struct FastDone {
    /// Bytes framed (elements and the whitespace before them).
    len: usize,
    /// What the last element asked for; anything but `Continue` stops.
    after: After,
}

/// Cut and read the complete plain elements at the start of `bytes` (the
/// framer being between units), as the framer and [`element_unit`] would:
/// same units, offsets, events. Stops at the first element [`lite::frame`]
/// leaves to the framer, at other top-level content, and after an element
/// that changes the stream (`<proceed/>`, `<compressed/>`). An element the
/// delivery ends inside goes to the framer as far as it was read
/// ([`Framer::resume`]), so its bytes are not scanned twice.
/// `text` is the valid UTF-8 prefix of `bytes` ([`valid_from`]): an
/// element running past it is the framer's.
fn fast_units(
    bytes: &[u8],
    text: &str,
    frame: u64,
    framer: &mut Framer,
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    st: &mut FlowState<'_>,
) -> FastDone {
    let limits = framer.limits();
    let mut done = FastDone {
        len: 0,
        after: After::Continue,
    };
    while done.after == After::Continue {
        let tail = text.get(done.len..).unwrap_or_default();
        // Whitespace between elements (XML 1.0 §2.3 S) is skipped, as the
        // framer does when it is not the whole delivery (a keepalive).
        let lead = tail
            .bytes()
            .position(|c| !matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
            .unwrap_or(tail.len());
        let Some(unit) = tail.get(lead..).filter(|u| u.starts_with('<')) else {
            break;
        };
        let (tree, len) = match lite::frame(unit, scope, limits.max_element_bytes, limits.max_depth)
        {
            lite::Framed::Whole(tree, len) => (tree, len),
            lite::Framed::Partial { depth, at } => {
                // The delivery ends inside this element (split across
                // segments): the framer takes it from where the reading
                // stopped, without scanning it again. Only when it runs to
                // the end of the delivery (not just of its UTF-8 prefix).
                let start = done.len + lead;
                if text.len() == bytes.len()
                    && let Some(partial) = bytes.get(start..)
                {
                    // The whitespace before it is skipped, as before a
                    // whole element.
                    framer.skip(bytes.get(done.len..start).unwrap_or_default());
                    done.len = start;
                    if framer.resume(partial, frame, depth, at) {
                        done.len = bytes.len();
                    }
                }
                break;
            }
            lite::Framed::Declined => break,
        };
        let start = framer.offset().saturating_add(lead as u64);
        let end = start.saturating_add(len as u64);
        framer.skip(
            bytes
                .get(done.len..done.len + lead + len)
                .unwrap_or_default(),
        );
        let unit_bytes = unit.as_bytes().get(..len).unwrap_or_default();
        done.after = element_unit(unit_bytes, start, end, &[frame], Some(tree), ctx, scope, st);
        done.len += lead + len;
    }
    done
}

/// Decide from a direction's first bytes what it carries.
fn decide(bytes: &[u8], ctx: &mut Ctx<'_>, s: &mut StreamState<'_>, st: &mut FlowState<'_>) {
    let first = xmpp::sniff(bytes);
    let mode = match (*st.class, first) {
        (_, FirstBytes::JabberStream) => Mode::Xml,
        (_, FirstBytes::Whitespace) => Mode::Undecided,
        (Class::Xmpp | Class::PortXmpp, FirstBytes::Markup) => Mode::Xml,
        (Class::Xmpp | Class::PortXmpp, FirstBytes::TextWithMarkup) => {
            // Capture began mid-element: find the next element first.
            let framer = s
                .framer
                .get_or_insert_with(|| Box::new(Framer::new(ctx.cfg.limits.framer)));
            framer.resync();
            Mode::Xml
        }
        (Class::Xmpp | Class::PortXmpp | Class::PortTls, FirstBytes::Tls) => Mode::Tls,
        (Class::PortXmpp | Class::PortTls, _) => {
            ctx.notes.push(Note::new(
                NoteKind::NotXmpp,
                format!(
                    "port {} but the bytes are neither XML nor TLS: shown as TCP data",
                    st.server_port
                ),
            ));
            Mode::Other
        }
        _ => Mode::Other,
    };
    *s.mode = mode;
    let decided = *st.class == Class::Xmpp;
    match mode {
        Mode::Other if !decided => *st.class = Class::Other,
        Mode::Xml if !decided => {
            st.counters.xmpp_flows += 1;
            *st.class = Class::Xmpp;
        }
        Mode::Tls if !decided => {
            st.counters.tls_flows += 1;
            *st.class = Class::Xmpp;
        }
        _ => {}
    }
}

/// What the stream does after an element.
#[derive(Debug, PartialEq, Eq)]
enum After {
    Continue,
    /// `<proceed/>`: TLS follows in both directions.
    Tls,
    /// `<compressed/>`.
    Compressed,
}

fn new_event(ctx: &Ctx<'_>, kind: EventKind, frames: &[u64], start: u64, end: u64) -> Event {
    Event {
        frame: ctx.frame,
        // The statistics count events, not the frames that carried them.
        frames: if ctx.cfg.counts_only {
            Vec::new()
        } else {
            frames.to_vec()
        },
        time: ctx.ts,
        flow: ctx.flow,
        dir: ctx.dir,
        src: ctx.src.0,
        sport: ctx.src.1,
        dst: ctx.dst.0,
        dport: ctx.dst.1,
        kind,
        name: String::new(),
        ns: element::empty_ns(),
        typ: None,
        id: None,
        from: None,
        to: None,
        info: String::new(),
        xml: String::new(),
        notes: Vec::new(),
        chat_state: None,
        has_body: false,
        facts: crate::model::Facts::default(),
        offset: start,
        len: end.saturating_sub(start),
        element: None,
        details: None,
        pretty: String::new(),
        response_to: None,
        response_time: None,
        response_in: None,
        decrypted: false,
    }
}

fn framer_event(
    ev: FramerEvent<'_>,
    ctx: &mut Ctx<'_>,
    scope: &mut Scope,
    st: &mut FlowState<'_>,
    ws_only: bool,
) -> After {
    let unit = match ev {
        FramerEvent::Note(n) => {
            let kind = match n.kind {
                FramerNoteKind::ElementTooLarge => NoteKind::LimitElementSize,
                FramerNoteKind::DepthExceeded => NoteKind::LimitElementDepth,
                FramerNoteKind::Malformed => NoteKind::MalformedXml,
                FramerNoteKind::Resync => NoteKind::XmlResync,
            };
            let limit = match kind {
                NoteKind::LimitElementSize => format!(
                    " (--max-element-bytes {})",
                    ctx.cfg.limits.framer.max_element_bytes
                ),
                NoteKind::LimitElementDepth => {
                    format!(" (--max-depth {})", ctx.cfg.limits.framer.max_depth)
                }
                _ => String::new(),
            };
            ctx.notes.push(Note::on_flow(
                kind,
                ctx.flow,
                format!(
                    "flow {} {}: {}{limit} at stream offset {}..{}",
                    ctx.flow,
                    ctx.dir.as_str(),
                    n.detail,
                    n.start,
                    n.end
                ),
            ));
            return After::Continue;
        }
        FramerEvent::Unit(u) => u,
    };
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    match unit.kind {
        UnitKind::Whitespace => {
            if ws_only {
                let mut e = new_event(ctx, EventKind::Keepalive, unit.frames, unit.start, unit.end);
                if !ctx.cfg.counts_only {
                    e.info = "Whitespace Keepalive".into();
                }
                if ctx.cfg.keep_xml {
                    e.xml = text(unit.bytes);
                }
                ctx.events.push(e);
            }
            After::Continue
        }
        UnitKind::XmlDecl => {
            let mut e = new_event(ctx, EventKind::XmlDecl, unit.frames, unit.start, unit.end);
            if !ctx.cfg.counts_only {
                e.info = "XML".into();
                e.name = "?xml".into();
            }
            if ctx.cfg.keep_xml {
                e.xml = text(unit.bytes);
            }
            ctx.events.push(e);
            After::Continue
        }
        UnitKind::StreamEnd => {
            let mut e = new_event(ctx, EventKind::StreamEnd, unit.frames, unit.start, unit.end);
            if !ctx.cfg.counts_only {
                e.info = "STREAM END".into();
                e.name = text(
                    unit.bytes
                        .get(2..unit.bytes.len().saturating_sub(1))
                        .unwrap_or_default(),
                );
                e.ns = std::sync::Arc::from(element::NS_STREAMS);
            }
            if ctx.cfg.keep_xml {
                e.xml = text(unit.bytes);
            }
            ctx.events.push(e);
            After::Continue
        }
        UnitKind::StreamHeader => {
            let mut e = new_event(
                ctx,
                EventKind::StreamHeader,
                unit.frames,
                unit.start,
                unit.end,
            );
            match element::parse(unit.bytes, &Scope::default(), true) {
                Ok(el) => {
                    *scope = el.scope_inside(&Scope::default());
                    e.info = info::stream_header(&el, ctx.dir);
                    if ctx.cfg.keep_xml {
                        e.details = Some(detail::stream_header(&el));
                    }
                    fill_from_element(&mut e, &el, ctx.cfg.keep_tree);
                }
                Err(err) => {
                    e.info = "STREAM (malformed)".into();
                    e.notes
                        .push(malformed_note("stream header", unit.start, &err));
                }
            }
            if ctx.cfg.keep_xml {
                e.xml = text(unit.bytes);
            }
            ctx.events.push(e);
            After::Continue
        }
        UnitKind::Element => element_unit(
            unit.bytes,
            unit.start,
            unit.end,
            unit.frames,
            None,
            ctx,
            scope,
            st,
        ),
        UnitKind::Comment | UnitKind::Pi | UnitKind::Text => {
            let what = match unit.kind {
                UnitKind::Comment => "a comment",
                UnitKind::Pi => "a processing instruction",
                _ => "text",
            };
            ctx.notes.push(Note::on_flow(
                NoteKind::MalformedXml,
                ctx.flow,
                format!(
                    "flow {} {}: {what} at the top level of the stream ({} bytes at offset {}), not allowed in XMPP (RFC 6120 §11.1)",
                    ctx.flow,
                    ctx.dir.as_str(),
                    unit.bytes.len(),
                    unit.start
                ),
            ));
            After::Continue
        }
    }
}

/// One complete top-level element (`bytes`, at stream offsets
/// `start..end`, completed in `frames`): its event, and what the stream does
/// next. `fast` is the element already read by [`lite::frame`], if it was.
#[allow(clippy::too_many_arguments)]
fn element_unit(
    bytes: &[u8],
    start: u64,
    end: u64,
    frames: &[u64],
    fast: Option<lite::Tree<'_>>,
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    st: &mut FlowState<'_>,
) -> After {
    let mut after = After::Continue;
    // Only the printers that show the XML or the tree need an owned
    // element; the summary is read straight from the bytes when they
    // are plain enough ([`lite`]), by quick-xml otherwise.
    let full = ctx.cfg.keep_xml || ctx.cfg.keep_tree;
    let fast = match fast {
        _ if full => None,
        Some(t) => Some(t),
        None => lite::parse(bytes, scope),
    };
    let slow;
    let parsed = match fast {
        Some(t) => Ok((t, None)),
        None => {
            slow = element::parse(bytes, scope, false);
            match &slow {
                Ok(el) => Ok((lite::Tree::from_element(el), Some(el))),
                Err(err) => Err(err),
            }
        }
    };
    match parsed {
        Ok((tree, owned)) => {
            let el = tree.root();
            let d = if ctx.cfg.counts_only {
                info::describe_counts(el, ctx.dir)
            } else {
                info::describe_el(el, ctx.dir)
            };
            let local = el.local();
            // A counts-only run's stanza with nothing to note is counted
            // from a tally: no event is built for it.
            let mut paired = None;
            if ctx.tallies.is_some()
                && d.kind() == EventKind::Stanza
                && d.notes.is_empty()
                && d.facts.stanza.is_some()
            {
                let p = if local == "iq" {
                    iq_pairing(el, "", ctx, st)
                } else {
                    IqPaired::Nothing
                };
                if !matches!(p, IqPaired::Evicted(_)) {
                    let typ = unusual_type(el, &d.facts);
                    if let Some(tallies) = ctx.tallies.as_deref_mut() {
                        tallies.push(Tally {
                            facts: d.facts,
                            chat_state: d.chat_state,
                            has_body: d.has_body,
                            typ,
                        });
                    }
                    return after;
                }
                paired = Some(p);
            }
            let mut e = new_event(ctx, EventKind::Nonza, frames, start, end);
            e.kind = d.kind();
            e.info = d.info;
            e.chat_state = d.chat_state;
            e.has_body = d.has_body;
            e.facts = d.facts;
            e.notes = d.notes;
            // What only elements other than stanzas (message, presence, iq:
            // most of a stream) are looked at for.
            if e.kind != EventKind::Stanza {
                after = nonza_checks(el, &mut e, st);
            }
            match paired {
                // Paired already (above), and a request was forgotten.
                Some(IqPaired::Evicted(note)) => e.notes.push(note),
                Some(_) => {}
                None if e.kind == EventKind::Stanza && local == "iq" => {
                    pair_iq(&mut e, el, ctx, st);
                }
                None => {}
            }
            if let Some(owned) = owned
                && ctx.cfg.keep_xml
            {
                let mech = st.sasl_mech.as_deref();
                e.xml = masked_xml(bytes, owned, ctx.cfg.show_secrets, mech);
                let dctx = detail::Ctx {
                    sasl_mech: mech,
                    show_secrets: ctx.cfg.show_secrets,
                };
                let (v, notes) = detail::details(owned, dctx);
                e.details = Some(v);
                e.notes.extend(notes);
                e.pretty = detail::pretty(owned, ctx.cfg.show_secrets, mech);
            }
            if ctx.cfg.counts_only && e.kind == EventKind::Stanza {
                e.typ = unusual_type(el, &e.facts);
            } else {
                fill_from(&mut e, el, owned, scope);
            }
            if let Some(owned) = owned
                && ctx.cfg.keep_tree
            {
                e.element = Some(Box::new(owned.clone()));
            }
            ctx.events.push(e);
        }
        Err(err) => {
            let mut e = new_event(ctx, EventKind::Junk, frames, start, end);
            e.info = "MALFORMED XML".into();
            e.notes.push(malformed_note("element", start, err));
            if ctx.cfg.keep_xml {
                e.xml = String::from_utf8_lossy(bytes).into_owned();
            }
            ctx.events.push(e);
        }
    }
    after
}

/// What the statistics read of a stanza besides its facts: they count
/// messages, presences and IQs by `type`, which the facts hold when it is a
/// usual one; otherwise the attribute as written (a counts-only run).
fn unusual_type(el: lite::El<'_, '_>, facts: &crate::model::Facts) -> Option<String> {
    if facts.typ.is_some() {
        return None;
    }
    el.attr("type").map(str::to_owned)
}

/// What an element other than a stanza changes in its flow (STARTTLS
/// seen, the stream's next layer, the SASL mechanism), and the notes its
/// rules call for.
fn nonza_checks(el: lite::El<'_, '_>, e: &mut Event, st: &mut FlowState<'_>) -> After {
    let (local, ns) = (el.local(), el.ns());
    let mut after = After::Continue;
    match (local, ns) {
        ("starttls", info::NS_TLS) => {
            if *st.starttls_seen {
                // RFC 6120 §5.4.3.3: STARTTLS once per stream.
                e.notes.push(Note::new(
                    NoteKind::DuplicateStarttls,
                    "second STARTTLS on this flow",
                ));
            }
            *st.starttls_seen = true;
        }
        ("proceed", info::NS_TLS) => {
            if !*st.starttls_seen {
                e.notes.push(Note::new(
                    NoteKind::ProceedWithoutStarttls,
                    "PROCEED without a STARTTLS before it (RFC 6120 §5.4.2.3)",
                ));
            }
            after = After::Tls;
        }
        ("compressed", info::NS_COMPRESS) => after = After::Compressed,
        ("auth", info::NS_SASL) => {
            *st.sasl_mech = el.attr("mechanism").map(Box::from);
        }
        _ => {}
    }
    if ns == info::NS_SASL && matches!(local, "auth" | "challenge" | "response" | "success") {
        let text = el.text();
        let t = text.trim();
        if !t.is_empty() && t != "=" && xmpp::sasl::b64(t).is_none() {
            e.notes.push(Note::new(
                NoteKind::SaslUndecodable,
                format!("SASL {local} text is not base64 (RFC 6120 §6.4.2): kept as it is"),
            ));
        }
    }
    after
}

/// The note for a unit quick-xml could not parse, at its stream offset.
fn malformed_note(what: &str, unit_start: u64, err: &element::ParseError) -> Note {
    Note::new(
        NoteKind::MalformedXml,
        format!(
            "{what} at stream offset {}: {}",
            unit_start + err.offset,
            err.message
        ),
    )
}

/// Name, namespace and the addressing attributes of a parsed element.
fn fill_from(e: &mut Event, el: lite::El<'_, '_>, owned: Option<&element::Element>, scope: &Scope) {
    // A new event's name is empty: one allocation of the right size.
    e.name = el.name().to_owned();
    e.ns = match owned {
        Some(o) => o.ns.clone(),
        None if el.ns() == &*scope.default_ns => scope.default_ns.clone(),
        None => element::intern(el.ns()),
    };
    e.typ = el.attr("type").map(str::to_owned);
    e.id = el.attr("id").map(str::to_owned);
    e.from = el.attr("from").map(str::to_owned);
    e.to = el.attr("to").map(str::to_owned);
}

fn fill_from_element(e: &mut Event, el: &element::Element, keep_tree: bool) {
    e.name.clone_from(&el.name);
    e.ns.clone_from(&el.ns);
    e.typ = el.attr("type").map(str::to_owned);
    e.id = el.attr("id").map(str::to_owned);
    e.from = el.attr("from").map(str::to_owned);
    e.to = el.attr("to").map(str::to_owned);
    if keep_tree {
        e.element = Some(Box::new(el.clone()));
    }
}

/// What pairing an IQ with its request or response said (RFC 6120 §8.2.3,
/// one pass).
enum IqPaired {
    /// It answers this request.
    Response(pairing::Pending),
    /// It is a request, and the one forgotten to make room (at
    /// `--max-pending-iqs`) has this note.
    Evicted(Note),
    Nothing,
}

/// Pair an IQ: `info` is its Info (a counts-only event has none: the Info
/// is then built for requests alone, for the note if one stays unanswered).
fn iq_pairing(el: lite::El<'_, '_>, info: &str, ctx: &Ctx<'_>, st: &mut FlowState<'_>) -> IqPaired {
    let limit = ctx.cfg.limits.max_pending_iqs;
    let (dir, counts_only) = (ctx.dir, ctx.cfg.counts_only);
    let what = || {
        if counts_only {
            info::describe_el(el, dir).info
        } else {
            info.to_owned()
        }
    };
    match st.iqs.iq(
        dir,
        el.attr("type"),
        el.attr("id"),
        ctx.frame,
        ctx.ts,
        what,
        limit,
    ) {
        pairing::Outcome::Response { request } => IqPaired::Response(request),
        pairing::Outcome::Request {
            evicted: Some(old), ..
        } => IqPaired::Evicted(Note::on_flow(
            NoteKind::LimitPendingIqs,
            ctx.flow,
            format!(
                "more than {limit} unanswered IQ requests on flow {} (--max-pending-iqs): forgot the request in frame {} (id '{}')",
                ctx.flow, old.frame, old.id
            ),
        )),
        _ => IqPaired::Nothing,
    }
}

/// Pair an IQ event, and link a request that completed in this same frame
/// to it.
fn pair_iq(e: &mut Event, el: lite::El<'_, '_>, ctx: &mut Ctx<'_>, st: &mut FlowState<'_>) {
    match iq_pairing(el, &e.info, ctx, st) {
        IqPaired::Response(request) => {
            e.response_to = Some(request.frame);
            e.response_time = Some(ctx.ts.since(request.time));
            if let Some(req) = ctx.events.iter_mut().rev().find(|r| {
                r.frame == request.frame
                    && r.dir == request.dir
                    && r.id.as_deref() == Some(request.id.as_str())
                    && r.response_in.is_none()
            }) {
                req.response_in = Some(ctx.frame);
            }
        }
        IqPaired::Evicted(note) => e.notes.push(note),
        IqPaired::Nothing => {}
    }
}

/// The element's text with credentials masked unless asked otherwise.
fn masked_xml(
    bytes: &[u8],
    el: &element::Element,
    show_secrets: bool,
    mech: Option<&str>,
) -> String {
    let xml = String::from_utf8_lossy(bytes).into_owned();
    if show_secrets {
        return xml;
    }
    let mut secrets = Vec::new();
    collect_secrets(el, None, mech, &mut secrets);
    let mut out = xml;
    for secret in secrets {
        if !out.contains(&secret) {
            // Written with entities or split: show the masked re-serialisation.
            return detail::pretty(el, false, mech);
        }
        out = out.replace(&secret, xmpp::sasl::MASK);
    }
    out
}

fn collect_secrets(
    el: &element::Element,
    parent_ns: Option<&str>,
    mech: Option<&str>,
    out: &mut Vec<String>,
) {
    if detail::secret_text(el, parent_ns, mech) {
        out.push(el.text.trim().to_owned());
    }
    for c in &el.children {
        collect_secrets(c, Some(&el.ns), mech, out);
    }
}

fn tls_event(ev: TlsEvent, ctx: &mut Ctx<'_>) {
    match ev {
        TlsEvent::Record(r) => {
            let mut e = new_event(ctx, EventKind::Tls, &[ctx.frame], r.start, r.end);
            if !ctx.cfg.counts_only {
                e.info = tls::record_summary(&r);
                e.name = tls::content_type_name(r.content_type).to_owned();
            }
            if ctx.cfg.keep_xml {
                e.details = Some(detail::tls_record(&r));
            }
            ctx.events.push(e);
        }
        TlsEvent::Note { kind, detail, .. } => {
            let k = match kind {
                TlsNoteKind::NotTls => NoteKind::NotTls,
                TlsNoteKind::HandshakeTooLarge => NoteKind::LimitTlsHandshake,
                TlsNoteKind::MalformedHandshake => NoteKind::MalformedTls,
            };
            ctx.notes.push(Note::new(k, detail));
        }
    }
}

/// The recognizer's events of one delivery, each record followed by what its decryption gave.
fn emit_decrypted(
    tevs: Vec<TlsEvent>,
    outs: Vec<DecOut>,
    ctx: &mut Ctx<'_>,
    s: &mut StreamState<'_>,
    st: &mut FlowState<'_>,
) {
    let mut outs = outs.into_iter().peekable();
    for ev in tevs {
        let start = match &ev {
            TlsEvent::Record(r) => Some(r.start),
            TlsEvent::Note { .. } => None,
        };
        tls_event(ev, ctx);
        let Some(start) = start else { continue };
        let idx = ctx.events.len().checked_sub(1);
        while let Some(o) = outs.next_if(|o| match o {
            DecOut::Record(d) => d.start <= start,
            DecOut::Note(_) => true,
        }) {
            apply_decrypted(o, idx, ctx, s, st);
        }
    }
    for o in outs {
        apply_decrypted(o, None, ctx, s, st);
    }
}

/// One decryption result: rename the record's event, feed application data to the
/// direction's decrypted XMPP framer, or turn a [`Why`] into an expert note.
fn apply_decrypted(
    o: DecOut,
    record_event: Option<usize>,
    ctx: &mut Ctx<'_>,
    s: &mut StreamState<'_>,
    st: &mut FlowState<'_>,
) {
    let d: Decrypted = match o {
        DecOut::Note(why) => {
            let (kind, text) = match why {
                Why::NoKey(t) => (NoteKind::TlsNoKey, t),
                Why::UnsupportedSuite(t) => (NoteKind::TlsUnsupportedCipher, t),
                Why::MidSession(t) => (NoteKind::TlsMidSession, t),
                Why::BadTag(t) => (NoteKind::TlsDecryptFailed, t),
                Why::Lost(t) => (NoteKind::TlsDecryptLost, t),
            };
            ctx.notes.push(Note::on_flow(
                kind,
                ctx.flow,
                format!("flow {}: {text}", ctx.flow),
            ));
            return;
        }
        DecOut::Record(d) => d,
    };
    if let Some(e) = record_event.and_then(|i| ctx.events.get_mut(i))
        && e.kind == EventKind::Tls
        && e.offset == d.start
    {
        if !ctx.cfg.counts_only {
            e.info.clone_from(&d.summary);
            e.name = tls::content_type_name(d.content_type).to_owned();
        }
        e.decrypted = true;
    }
    if d.data.is_empty() {
        return;
    }
    let ws_only = d.data.len() <= 16 && d.data.iter().all(u8::is_ascii_whitespace);
    let framer = s
        .dec_framer
        .get_or_insert_with(|| Box::new(Framer::new(ctx.cfg.limits.framer)));
    let first = ctx.events.len();
    let scope = &mut *s.dec_scope;
    framer.push(&d.data, d.frame, &mut |ev| {
        // STARTTLS or compression inside TLS is not followed further.
        let _ = framer_event(ev, ctx, scope, st, ws_only);
    });
    for e in ctx.events.iter_mut().skip(first) {
        e.decrypted = true;
    }
}

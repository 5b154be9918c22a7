//! The loading thread: reads the capture through [`FileSource`] (libpcap),
//! dissects every frame, turns each packet into an index [`Row`] and ships
//! the rows in batches, small at first (so that the first screen appears at
//! once) then every [`BATCH_INTERVAL`].
//!
//! [`Row`]: super::index::Row

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::capture::{End, FileSource, FrameRef};
use crate::dissect::{Config, Dissector};
use crate::link;
use crate::live::{Ended, InterfaceStats, Session, Step};
use crate::model::Packet;
use crate::names::Names;

use super::index::{Batch, IndexBuilder, tcpflag};
use super::pcapidx::{self, OffsetScanner};

/// How often a live capture's counters are sent when no packet arrives.
pub const LIVE_STATUS_INTERVAL: Duration = Duration::from_millis(500);
/// How long a live capture waits for a frame before looking again.
const LIVE_TICK: Duration = Duration::from_millis(20);

/// How often a batch is sent while loading.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(50);
/// Rows that make the first batch go out at once.
pub const FIRST_BATCH_ROWS: usize = 512;
/// Rows that make any batch go out.
pub const MAX_BATCH_ROWS: usize = 32_768;

/// How far the loading got.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Bytes of the file read.
    pub bytes: u64,
    /// Size of the file (`None`: standard input).
    pub total: Option<u64>,
    pub packets: u64,
    pub elapsed: Duration,
    pub done: bool,
    /// Why loading stopped early (cut short, read error), if it did.
    pub problem: Option<String>,
    /// Frame offsets are known (bytes and XML can be shown).
    pub offsets: bool,
    /// The capture's link type.
    pub linktype: i32,
    /// A live capture's state (`None` when reading a file).
    pub live: Option<LiveStatus>,
}

/// A live capture, as the status line shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveStatus {
    /// The interfaces captured on.
    pub interfaces: Vec<String>,
    /// The capture filter (empty: everything).
    pub filter: String,
    /// Where the packets are saved; `None`: a temporary file only.
    pub savefile: Option<String>,
    /// libpcap's and xmppscope's counters, summed over the interfaces.
    pub stats: InterfaceStats,
    /// Still capturing.
    pub running: bool,
}

impl Progress {
    /// Packets per second so far.
    #[must_use]
    pub fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            #[allow(clippy::cast_precision_loss)]
            let p = self.packets as f64;
            p / s
        } else {
            0.0
        }
    }

    /// Fraction of the file read, when its size is known.
    #[must_use]
    pub fn fraction(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)]
        self.total
            .filter(|t| *t > 0)
            .map(|t| (self.bytes as f64 / t as f64).clamp(0.0, 1.0))
    }

    /// Estimated time left.
    #[must_use]
    pub fn eta(&self) -> Option<Duration> {
        let f = self.fraction()?;
        if f <= 0.0 || self.done {
            return None;
        }
        let s = self.elapsed.as_secs_f64() * (1.0 - f) / f;
        Duration::try_from_secs_f64(s).ok()
    }
}

/// What the loader sends: a batch of rows and where it stands.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub batch: Batch,
    pub progress: Progress,
}

/// TCP flag bits of a frame, for the Info of packets without XMPP.
#[must_use]
pub fn tcp_flags(linktype: i32, data: &[u8]) -> u8 {
    match link::tcp_segment(linktype, data) {
        Ok(s) => {
            let mut f = 0;
            for (on, bit) in [
                (s.syn, tcpflag::SYN),
                (s.fin, tcpflag::FIN),
                (s.rst, tcpflag::RST),
                (s.has_ack, tcpflag::ACK),
                (s.wire_len > 0, tcpflag::DATA),
            ] {
                if on {
                    f |= bit;
                }
            }
            f
        }
        Err(_) => 0,
    }
}

/// The dissector and the index being built, fed one frame at a time.
struct Indexer {
    dissector: Dissector,
    builder: IndexBuilder,
    packet: Packet,
    /// Names learnt since the last batch (for the filter's `host NAME`).
    names: Names,
}

impl Indexer {
    /// Rows are all the index needs: no XML text, no element trees.
    fn new(cfg: &Config) -> Self {
        Self {
            dissector: Dissector::new(Config {
                keep_xml: false,
                keep_tree: false,
                ..cfg.clone()
            }),
            builder: IndexBuilder::new(),
            packet: Packet::default(),
            names: Names::default(),
        }
    }

    /// Dissect one frame and add its row (`offset`: where it is in the file).
    fn frame(&mut self, f: &FrameRef<'_>, linktype: i32, offset: u64) {
        let tcp = tcp_flags(linktype, f.data);
        self.dissector
            .dissect(f.number, f.ts, linktype, f.data, f.len, &mut self.packet);
        if self.packet.flow.is_none()
            && let Some(u) = link::udp_datagram(linktype, f.data)
        {
            self.names.udp(u.sport, u.payload);
        }
        for e in &self.packet.events {
            self.names.event(e);
        }
        self.builder.add(&self.packet, offset, tcp);
        self.flushed();
    }

    fn flushed(&mut self) {
        let (events, notes) = self.dissector.take_flushed();
        for e in &events {
            self.names.event(e);
        }
        self.builder.add_flushed(events, notes);
    }

    /// The rows since the last batch, with the names learnt since then.
    fn take_batch(&mut self) -> Batch {
        let mut b = self.builder.take_batch();
        if !self.names.is_blank() {
            b.names = Some(std::mem::take(&mut self.names));
        }
        b
    }

    /// The end of the capture: what the flows still hold.
    fn finish(&mut self, last: u64) {
        self.dissector.finish(last);
        self.flushed();
    }
}

/// Load `path` with this dissector configuration, calling `send` with each
/// batch until the end, an error, or `cancel`. `send` returns false when
/// nobody listens any more. `count` stops after that many packets.
pub fn load(
    path: &str,
    cfg: &Config,
    count: Option<u64>,
    cancel: &Arc<AtomicBool>,
    send: &mut dyn FnMut(Loaded) -> bool,
) {
    load_batched(
        path,
        cfg,
        count,
        cancel,
        [FIRST_BATCH_ROWS, MAX_BATCH_ROWS],
        send,
    );
}

/// [`load`] with the rows that make the first and later batches go out.
pub fn load_batched(
    path: &str,
    cfg: &Config,
    count: Option<u64>,
    cancel: &Arc<AtomicBool>,
    [first_rows, max_rows]: [usize; 2],
    send: &mut dyn FnMut(Loaded) -> bool,
) {
    let started = Instant::now();
    let mut progress = Progress {
        total: if path == "-" {
            None
        } else {
            std::fs::metadata(path).ok().map(|m| m.len())
        },
        ..Progress::default()
    };
    let mut source = match FileSource::open(path) {
        Ok(s) => s,
        Err(e) => {
            progress.done = true;
            progress.problem = Some(e.to_string());
            send(Loaded {
                batch: Batch::default(),
                progress,
            });
            return;
        }
    };
    let linktype = source.linktype();
    progress.linktype = linktype;
    let mut scanner = if pcapidx::rereadable(path) {
        OffsetScanner::open(Path::new(path)).ok()
    } else {
        None
    };
    progress.offsets = scanner.is_some();
    let mut ix = Indexer::new(cfg);
    let mut last_sent = Instant::now();
    let mut sent_any = false;
    let mut last = 0;
    let mut approx_bytes = 24u64;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return;
        }
        if count.is_some_and(|c| last >= c) || ix.builder.rows() == u32::MAX - 1 {
            break;
        }
        let frame = match source.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                progress.problem = Some(match FileSource::classify(&e) {
                    Some(End::Truncated(m)) => format!(
                        "the file ends in the middle of a record after frame {last} ({m}); everything before it was read"
                    ),
                    _ => e.to_string(),
                });
                break;
            }
        };
        last = frame.number;
        let mut offset = u64::MAX;
        if let Some(s) = scanner.as_mut() {
            match s.next_record() {
                Ok(Some((off, caplen))) if caplen as usize == frame.data.len() => offset = off,
                _ => {
                    // Disagreeing with libpcap: stop trusting the offsets.
                    scanner = None;
                    progress.offsets = false;
                }
            }
        }
        approx_bytes += 16 + frame.data.len() as u64;
        ix.frame(&frame, linktype, offset);
        let due = if sent_any {
            ix.builder.pending() >= max_rows || last_sent.elapsed() >= BATCH_INTERVAL
        } else {
            ix.builder.pending() >= first_rows || started.elapsed() >= BATCH_INTERVAL / 2
        };
        if due {
            progress.bytes = scanner
                .as_ref()
                .map_or(approx_bytes, OffsetScanner::position);
            progress.packets = last;
            progress.elapsed = started.elapsed();
            if !send(Loaded {
                batch: ix.take_batch(),
                progress: progress.clone(),
            }) {
                return;
            }
            sent_any = true;
            last_sent = Instant::now();
        }
    }
    ix.finish(last);
    progress.bytes = progress.total.unwrap_or(approx_bytes);
    if progress.problem.is_some() {
        progress.bytes = scanner
            .as_ref()
            .map_or(approx_bytes, OffsetScanner::position);
    }
    progress.packets = last;
    progress.elapsed = started.elapsed();
    progress.done = true;
    send(Loaded {
        batch: ix.take_batch(),
        progress,
    });
}

/// Dissect a live capture as it arrives (the TUI's live mode): every frame
/// is written to the session's savefile, indexed with its offset there, and
/// the rows are sent in batches, with the capture's counters, until the
/// capture ends (`-c`, `-a`, an error) or `cancel`. The savefile is flushed
/// before each batch, so that every row sent can be read back from it.
/// `temporary`: the savefile is the TUI's own, not the user's `-w`.
#[must_use]
pub fn load_live(
    mut session: Session,
    temporary: bool,
    cfg: &Config,
    cancel: &AtomicBool,
    send: &mut dyn FnMut(Loaded) -> bool,
) -> Ended {
    let started = Instant::now();
    let mut status = LiveStatus {
        interfaces: session.interface_names(),
        filter: session.filter().to_owned(),
        savefile: if temporary {
            None
        } else {
            session.savefile().map(str::to_owned)
        },
        stats: InterfaceStats::default(),
        running: true,
    };
    let mut progress = Progress {
        offsets: session.savefile().is_some(),
        linktype: session.linktypes().first().copied().unwrap_or_default(),
        ..Progress::default()
    };
    let mut ix = Indexer::new(cfg);
    let mut last_sent: Option<Instant> = None;
    let mut listening = true;
    loop {
        if listening && cancel.load(Ordering::Relaxed) {
            session.stop();
            listening = false;
        }
        match session.next(LIVE_TICK) {
            Step::Frame {
                number,
                linktype,
                frame,
                offset,
            } => {
                if let Some(k) = session.take_keylog() {
                    ix.dissector.set_keylog(k);
                }
                let f = FrameRef {
                    number,
                    ts: frame.ts,
                    len: frame.wire_len,
                    data: &frame.data,
                };
                ix.frame(&f, linktype, offset.unwrap_or(u64::MAX));
            }
            Step::Idle { .. } => {}
            Step::End => break,
        }
        if ix.builder.rows() >= u32::MAX - 1 {
            session.stop();
        }
        let since = last_sent.map_or(Duration::MAX, |t| t.elapsed());
        let due = ix.builder.pending() >= MAX_BATCH_ROWS
            || (ix.builder.pending() > 0 && since >= BATCH_INTERVAL)
            || since >= LIVE_STATUS_INTERVAL;
        if listening && due {
            session.flush();
            status.stats = InterfaceStats::total(&session.stats());
            progress.bytes = session.saved_bytes();
            progress.packets = session.packets();
            progress.elapsed = started.elapsed();
            progress.live = Some(status.clone());
            if !send(Loaded {
                batch: ix.take_batch(),
                progress: progress.clone(),
            }) {
                session.stop();
                listening = false;
            }
            last_sent = Some(Instant::now());
        }
    }
    let packets = session.packets();
    ix.finish(packets);
    let ended = session.finish();
    status.stats = InterfaceStats::total(&ended.stats);
    status.running = false;
    progress.packets = packets;
    progress.elapsed = started.elapsed();
    progress.done = true;
    progress.problem = ended.error.as_ref().map(|e| format!("{e:#}"));
    progress.live = Some(status);
    if listening {
        send(Loaded {
            batch: ix.take_batch(),
            progress,
        });
    }
    ended
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::index::Index;

    const PLAIN: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/captures/prosody-plain-signin-chat.pcap"
    );

    #[test]
    fn loads_the_plain_capture_in_batches() {
        let mut idx = Index::default();
        let mut last = Progress::default();
        let mut batches = 0;
        load(
            PLAIN,
            &Config::default(),
            None,
            &Arc::new(AtomicBool::new(false)),
            &mut |l| {
                idx.apply(l.batch);
                last = l.progress;
                batches += 1;
                true
            },
        );
        assert!(last.done);
        assert!(last.offsets);
        assert_eq!(last.problem, None);
        assert_eq!(last.packets, idx.len() as u64);
        assert!(batches >= 1);
        // Frame 8 is the SASL PLAIN auth.
        assert_eq!(idx.info(7), "AUTH PLAIN user=alice");
        assert!(idx.row(7).unwrap().is_xmpp());
        assert_eq!(idx.flow_count(), 2);
        let f = idx.flow(0).unwrap();
        assert_eq!(f.server.1, 5222);
        assert!(f.closed);
        assert_eq!(f.signin, crate::ui::index::SignIn::Online);
        assert_eq!(f.user.as_deref(), Some("alice"));
        assert!(f.has_jid("alice@localhost"), "{:?}", f.jids);
        // TCP-only rows get ports and flags.
        assert!(idx.info(0).contains("[SYN]"), "{}", idx.info(0));
    }

    #[test]
    fn missing_file_is_reported() {
        let mut got = None;
        load(
            "/nonexistent/x.pcap",
            &Config::default(),
            None,
            &Arc::new(AtomicBool::new(false)),
            &mut |l| {
                got = Some(l.progress);
                true
            },
        );
        let p = got.unwrap();
        assert!(p.done);
        assert!(p.problem.unwrap().contains("cannot open"));
    }

    #[test]
    fn count_limits_and_progress_math() {
        let mut n = 0;
        load(
            PLAIN,
            &Config::default(),
            Some(10),
            &Arc::new(AtomicBool::new(false)),
            &mut |l| {
                n += l.batch.rows.len();
                true
            },
        );
        assert_eq!(n, 10);
        let p = Progress {
            bytes: 50,
            total: Some(200),
            packets: 100,
            elapsed: Duration::from_secs(1),
            ..Progress::default()
        };
        assert_eq!(p.fraction(), Some(0.25));
        assert!((p.rate() - 100.0).abs() < 1e-9);
        assert_eq!(p.eta(), Some(Duration::from_secs(3)));
    }
}

//! Live capture through libpcap: open the interfaces, one capture thread
//! per interface, owned frames over a bounded channel, merged by time.
//!
//! Each thread reads with `pcap_next_ex(3PCAP)` in immediate mode
//! (`pcap_set_immediate_mode(3PCAP)`: packets are delivered as they arrive,
//! not when a kernel buffer block fills), waiting at most 100 ms at a time
//! so that it notices the stop flag within a tenth of a second even on a
//! silent interface (see [`capture_loop`]). It copies each packet into
//! an owned [`Frame`] and offers it with `try_send`: when the consumer has
//! fallen behind (the channel is full, or the frames in flight hold more
//! than [`QUEUE_BYTES`]), the frame is dropped and counted, never queued
//! without bound and never blocking the capture.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::os::fd::AsFd as _;

use nix::poll::{PollFd, PollFlags, poll};
use pcap::{Active, Capture, Device, Precision};

use super::merge::Merger;
use crate::link;
use crate::model::Timestamp;

/// The default capture filter: XMPP client (5222), client direct TLS
/// (5223, XEP-0368 / legacy SSL) and server-to-server (5269) ports.
pub const DEFAULT_FILTER: &str = "tcp port 5222 or tcp port 5223 or tcp port 5269";
/// Default snapshot length, tcpdump's since 4.99 (`-s`).
pub const DEFAULT_SNAPLEN: u32 = 262_144;
/// Read timeout of each capture handle.
pub const READ_TIMEOUT: Duration = Duration::from_millis(100);
/// Frames the channel holds before the capture threads drop.
pub const QUEUE_FRAMES: usize = 8192;
/// Bytes of frame data in flight (channel and merge) before dropping.
pub const QUEUE_BYTES: usize = 64 << 20;
/// How often each thread refreshes libpcap's statistics.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// How long a frame may wait for a silent interface's watermark.
const MAX_HOLD_NS: i64 = 1_000_000_000;
/// Kernel time stamps are taken a little before the frame is in the
/// ring: a timeout vouches only for what is older than this.
const WATERMARK_MARGIN_NS: i64 = 10_000_000;

/// What to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureOptions {
    /// Interface names (`-i`, repeatable).
    pub interfaces: Vec<String>,
    /// BPF expression (`-f`); empty: everything.
    pub filter: String,
    /// Snapshot length (`-s`); 0 means the default.
    pub snaplen: u32,
    /// Promiscuous mode (off with `-p`).
    pub promisc: bool,
    /// Kernel buffer in bytes (`-B` is in KiB); `None`: libpcap's default.
    pub buffer_bytes: Option<u32>,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            filter: DEFAULT_FILTER.to_owned(),
            snaplen: DEFAULT_SNAPLEN,
            promisc: true,
            buffer_bytes: None,
        }
    }
}

/// A captured packet, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Index of the interface in [`Opened::interfaces`].
    pub iface: usize,
    pub ts: Timestamp,
    /// Length on the wire.
    pub wire_len: u32,
    pub data: Vec<u8>,
}

/// An open interface.
#[derive(Debug, Clone)]
pub struct InterfaceInfo {
    pub name: String,
    pub description: Option<String>,
    pub linktype: i32,
    pub snaplen: u32,
}

/// Errors a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(
        "cannot capture on {iface}: permission denied ({message}).\n\
         Run xmppscope as root, or give it the capture capabilities:\n    \
         sudo setcap cap_net_raw,cap_net_admin=eip $(command -v xmppscope)"
    )]
    Permission { iface: String, message: String },
    #[error(
        "no such interface: {iface}\ninterfaces here: {}\n(xmppscope -D lists them with their addresses)",
        available.join(", ")
    )]
    NoSuchInterface {
        iface: String,
        available: Vec<String>,
    },
    #[error("bad capture filter '{expr}': {message}")]
    BadFilter { expr: String, message: String },
    #[error(
        "cannot capture on {iface}: its link type is {name}; xmppscope dissects Ethernet, Linux cooked SLL/SLL2, BSD NULL/LOOP and raw IP"
    )]
    UnsupportedLinkType { iface: String, name: String },
    #[error("cannot capture on {iface}: {message}")]
    Open { iface: String, message: String },
    #[error("cannot list interfaces: {0}")]
    List(String),
    #[error("no interface to capture on")]
    NoInterface,
}

/// libpcap's own text of an error, without the crate's prefix.
fn pcap_message(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Interfaces libpcap can capture on (`pcap_findalldevs(3PCAP)`).
///
/// # Errors
/// libpcap cannot list them.
pub fn devices() -> Result<Vec<Device>, LiveError> {
    Device::list().map_err(|e| LiveError::List(pcap_message(&e)))
}

/// A link type as tcpdump names it: `EN10MB (Ethernet)`.
#[must_use]
pub fn linktype_label(linktype: i32) -> String {
    let l = pcap::Linktype(linktype);
    match (l.get_name(), l.get_description()) {
        (Ok(n), Ok(d)) => format!("{n} ({d})"),
        _ => link::linktype_name(linktype),
    }
}

/// Open one interface, activated and filtered.
fn open_one(
    name: &str,
    opts: &CaptureOptions,
) -> Result<(Capture<Active>, InterfaceInfo), LiveError> {
    let snaplen = if opts.snaplen == 0 {
        DEFAULT_SNAPLEN
    } else {
        opts.snaplen
    };
    let open_err = |e: pcap::Error| classify_open(name, &pcap_message(&e));
    let timeout_ms = i32::try_from(READ_TIMEOUT.as_millis()).unwrap_or(100);
    let mut inactive = Capture::from_device(name)
        .map_err(open_err)?
        .snaplen(i32::try_from(snaplen).unwrap_or(i32::MAX))
        .timeout(timeout_ms)
        .immediate_mode(true)
        .precision(Precision::Nano);
    // The "any" pseudo-interface has no promiscuous mode; libpcap warns,
    // which the pcap crate turns into a failure.
    if name != "any" {
        inactive = inactive.promisc(opts.promisc);
    }
    if let Some(b) = opts.buffer_bytes {
        inactive = inactive.buffer_size(i32::try_from(b).unwrap_or(i32::MAX));
    }
    let mut cap = inactive
        .open()
        .map_err(open_err)?
        .setnonblock()
        .map_err(|e| LiveError::Open {
            iface: name.to_owned(),
            message: pcap_message(&e),
        })?;
    let linktype = cap.get_datalink().0;
    if !link::supported(linktype) {
        return Err(LiveError::UnsupportedLinkType {
            iface: name.to_owned(),
            name: link::linktype_name(linktype),
        });
    }
    if !opts.filter.is_empty() {
        cap.filter(&opts.filter, true)
            .map_err(|e| LiveError::BadFilter {
                expr: opts.filter.clone(),
                message: pcap_message(&e),
            })?;
    }
    let description = Device::list()
        .ok()
        .and_then(|l| l.into_iter().find(|d| d.name == name))
        .and_then(|d| d.desc);
    Ok((
        cap,
        InterfaceInfo {
            name: name.to_owned(),
            description,
            linktype,
            snaplen,
        },
    ))
}

/// Turn libpcap's activation failure into something a person can act on.
fn classify_open(iface: &str, message: &str) -> LiveError {
    // An interface that is not there: list the ones that are. Checked
    // first, because without privileges libpcap fails on the socket before
    // it looks at the name.
    if let Ok(list) = Device::list()
        && !list.iter().any(|d| d.name == iface)
    {
        return LiveError::NoSuchInterface {
            iface: iface.to_owned(),
            available: list.into_iter().map(|d| d.name).collect(),
        };
    }
    let lower = message.to_ascii_lowercase();
    if lower.contains("permission") || lower.contains("not permitted") {
        return LiveError::Permission {
            iface: iface.to_owned(),
            message: message.to_owned(),
        };
    }
    if lower.contains("no such device") {
        return LiveError::NoSuchInterface {
            iface: iface.to_owned(),
            available: Vec::new(),
        };
    }
    LiveError::Open {
        iface: iface.to_owned(),
        message: message.to_owned(),
    }
}

/// Interfaces opened, filters set, threads not started yet (so that
/// privileges can be dropped in between).
pub struct Opened {
    caps: Vec<Capture<Active>>,
    infos: Vec<InterfaceInfo>,
}

impl Opened {
    /// Open every interface of `opts`.
    ///
    /// # Errors
    /// The first interface that cannot be opened or filtered.
    pub fn open(opts: &CaptureOptions) -> Result<Self, LiveError> {
        if opts.interfaces.is_empty() {
            return Err(LiveError::NoInterface);
        }
        let mut caps = Vec::new();
        let mut infos = Vec::new();
        for name in &opts.interfaces {
            let (cap, info) = open_one(name, opts)?;
            caps.push(cap);
            infos.push(info);
        }
        Ok(Self { caps, infos })
    }

    #[must_use]
    pub fn interfaces(&self) -> &[InterfaceInfo] {
        &self.infos
    }

    /// Start one capture thread per interface. They stop when `stop` is
    /// set (by a signal, by the consumer, or by one of them failing).
    #[must_use]
    pub fn start(self, stop: Arc<AtomicBool>) -> Running {
        let (tx, rx) = mpsc::sync_channel(QUEUE_FRAMES);
        let shared = Arc::new(Shared {
            ifaces: self.infos.iter().map(|_| IfaceCounters::new()).collect(),
            in_flight: AtomicUsize::new(0),
            max_bytes: QUEUE_BYTES,
        });
        let mut threads = Vec::new();
        for (i, cap) in self.caps.into_iter().enumerate() {
            let tx = tx.clone();
            let thread_shared = Arc::clone(&shared);
            let thread_stop = Arc::clone(&stop);
            let name = format!("capture {}", self.infos.get(i).map_or("?", |x| &x.name));
            let spawned = std::thread::Builder::new()
                .name(name)
                .spawn(move || capture_loop(i, cap, &tx, &thread_shared, &thread_stop));
            match spawned {
                Ok(h) => threads.push(Some(h)),
                Err(e) => {
                    // Without this interface's thread, stop the others too.
                    stop.store(true, Ordering::SeqCst);
                    if let Some(c) = shared.ifaces.get(i) {
                        c.ended(Some(format!("cannot start its capture thread: {e}")));
                    }
                    threads.push(None);
                }
            }
        }
        drop(tx);
        let n = self.infos.len();
        Running {
            rx,
            threads,
            shared,
            infos: self.infos,
            merger: Merger::default(),
            delivered: vec![0; n],
            stop,
            disconnected: false,
        }
    }
}

/// Counters of one interface, written by its thread, read by anyone.
struct IfaceCounters {
    /// libpcap's `ps_recv`, `ps_drop`, `ps_ifdrop` (`pcap_stats(3PCAP)`).
    received: AtomicU64,
    kernel_dropped: AtomicU64,
    if_dropped: AtomicU64,
    stats_known: AtomicBool,
    /// Frames put on the channel.
    queued: AtomicU64,
    /// Frames dropped because the consumer was behind.
    queue_dropped: AtomicU64,
    /// Nanoseconds since the epoch up to which this interface has handed
    /// over every frame it will ever hand over; `i64::MAX` once it ended.
    watermark: AtomicI64,
    /// Why the thread ended, if it failed.
    error: Mutex<Option<String>>,
}

impl IfaceCounters {
    fn new() -> Self {
        Self {
            received: AtomicU64::new(0),
            kernel_dropped: AtomicU64::new(0),
            if_dropped: AtomicU64::new(0),
            stats_known: AtomicBool::new(false),
            queued: AtomicU64::new(0),
            queue_dropped: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
            error: Mutex::new(None),
        }
    }

    fn ended(&self, error: Option<String>) {
        if let Ok(mut slot) = self.error.lock()
            && slot.is_none()
        {
            *slot = error;
        }
        self.watermark.store(i64::MAX, Ordering::SeqCst);
    }
}

struct Shared {
    ifaces: Vec<IfaceCounters>,
    /// Bytes of frame data queued or waiting in the merge.
    in_flight: AtomicUsize,
    max_bytes: usize,
}

/// What became of a frame offered to the consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offer {
    Queued,
    Dropped,
    /// The consumer is gone.
    Closed,
}

/// Hand a frame to the consumer without ever blocking.
fn offer(tx: &SyncSender<Frame>, frame: Frame, shared: &Shared, c: &IfaceCounters) -> Offer {
    let len = frame.data.len();
    let before = shared.in_flight.fetch_add(len, Ordering::AcqRel);
    if before.saturating_add(len) > shared.max_bytes {
        shared.in_flight.fetch_sub(len, Ordering::AcqRel);
        c.queue_dropped.fetch_add(1, Ordering::Relaxed);
        return Offer::Dropped;
    }
    match tx.try_send(frame) {
        Ok(()) => {
            c.queued.fetch_add(1, Ordering::Relaxed);
            Offer::Queued
        }
        Err(TrySendError::Full(_)) => {
            shared.in_flight.fetch_sub(len, Ordering::AcqRel);
            c.queue_dropped.fetch_add(1, Ordering::Relaxed);
            Offer::Dropped
        }
        Err(TrySendError::Disconnected(_)) => {
            shared.in_flight.fetch_sub(len, Ordering::AcqRel);
            Offer::Closed
        }
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn ts_ns(ts: Timestamp) -> i64 {
    ts.secs
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(ts.nanos))
}

fn ns_ts(ns: i64) -> Timestamp {
    Timestamp {
        secs: ns.div_euclid(1_000_000_000),
        nanos: u32::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0),
    }
}

fn refresh_stats(cap: &mut Capture<Active>, c: &IfaceCounters) {
    if let Ok(s) = cap.stats() {
        c.received.store(u64::from(s.received), Ordering::Relaxed);
        c.kernel_dropped
            .store(u64::from(s.dropped), Ordering::Relaxed);
        c.if_dropped
            .store(u64::from(s.if_dropped), Ordering::Relaxed);
        c.stats_known.store(true, Ordering::Release);
    }
}

/// The body of one capture thread.
///
/// The handle is non-blocking (`pcap_setnonblock(3PCAP)`): the thread
/// reads until libpcap has nothing more, then waits on the selectable
/// descriptor (`pcap_get_selectable_fd(3PCAP)`, poll(2)) for at most
/// [`READ_TIMEOUT`]. libpcap 1.10's own read timeout is not used: in
/// immediate mode on Linux its blocking read polls again after a timeout
/// instead of returning, so a quiet interface would never notice the stop
/// flag. A read that finds nothing also vouches that every packet stamped
/// before it was handed over, which is what the merge needs.
fn capture_loop(
    iface: usize,
    mut cap: Capture<Active>,
    tx: &SyncSender<Frame>,
    shared: &Shared,
    stop: &AtomicBool,
) {
    let Some(c) = shared.ifaces.get(iface) else {
        return;
    };
    let timeout_ms = u16::try_from(READ_TIMEOUT.as_millis()).unwrap_or(100);
    let mut last_stats = Instant::now();
    refresh_stats(&mut cap, c);
    let error = 'capture: loop {
        if stop.load(Ordering::SeqCst) {
            break None;
        }
        // Read everything that is there.
        loop {
            let before = now_ns();
            match cap.next_packet() {
                Ok(p) => {
                    let ts = Timestamp {
                        secs: p.header.ts.tv_sec,
                        // Nanosecond precision was asked for: libpcap puts
                        // nanoseconds in tv_usec.
                        nanos: u32::try_from(p.header.ts.tv_usec).unwrap_or(0),
                    };
                    let frame = Frame {
                        iface,
                        ts,
                        wire_len: p.header.len,
                        data: p.data.to_vec(),
                    };
                    if offer(tx, frame, shared, c) == Offer::Closed {
                        break 'capture None;
                    }
                    c.watermark.fetch_max(ts_ns(ts), Ordering::AcqRel);
                    if stop.load(Ordering::Relaxed) {
                        break 'capture None;
                    }
                    if last_stats.elapsed() >= STATS_EVERY {
                        refresh_stats(&mut cap, c);
                        last_stats = Instant::now();
                    }
                }
                Err(pcap::Error::TimeoutExpired) => {
                    // Nothing waiting: everything stamped before this read
                    // has been handed over.
                    c.watermark
                        .fetch_max(before - WATERMARK_MARGIN_NS, Ordering::AcqRel);
                    break;
                }
                Err(pcap::Error::NoMorePackets) => break 'capture None,
                Err(e) => {
                    // E.g. "The interface disappeared" (pcap-linux.c):
                    // stop the whole capture so the savefile is closed
                    // cleanly.
                    stop.store(true, Ordering::SeqCst);
                    break 'capture Some(pcap_message(&e));
                }
            }
        }
        if last_stats.elapsed() >= STATS_EVERY {
            refresh_stats(&mut cap, c);
            last_stats = Instant::now();
        }
        // Wait for more. Errors and hang-ups also wake poll; the next read
        // reports them.
        let mut fds = [PollFd::new(cap.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout_ms) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                stop.store(true, Ordering::SeqCst);
                break Some(format!("poll: {}", e.desc()));
            }
        }
    };
    refresh_stats(&mut cap, c);
    c.ended(error);
}

/// Statistics of one interface, for the end-of-run line and a status bar.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceStats {
    pub name: String,
    /// Frames handed to the dissector and the savefile.
    pub captured: u64,
    /// libpcap's `ps_recv`: packets that passed the filter. `None` until
    /// libpcap answered.
    pub received: Option<u64>,
    /// libpcap's `ps_drop`: no room in the kernel buffer.
    pub kernel_dropped: Option<u64>,
    /// libpcap's `ps_ifdrop`: dropped by the interface or its driver.
    pub if_dropped: Option<u64>,
    /// Dropped by xmppscope: the dissector fell behind the capture.
    pub queue_dropped: u64,
}

impl InterfaceStats {
    /// Sum over interfaces (named "total").
    #[must_use]
    pub fn total(all: &[Self]) -> Self {
        let sum = |f: fn(&Self) -> Option<u64>| {
            all.iter()
                .map(f)
                .try_fold(0u64, |a, v| v.map(|v| a.saturating_add(v)))
        };
        Self {
            name: "total".into(),
            captured: all.iter().map(|s| s.captured).sum(),
            received: sum(|s| s.received),
            kernel_dropped: sum(|s| s.kernel_dropped),
            if_dropped: sum(|s| s.if_dropped),
            queue_dropped: all.iter().map(|s| s.queue_dropped).sum(),
        }
    }

    /// tcpdump's end-of-capture report on one line: `N packets captured,
    /// N received by filter, N dropped by kernel, N dropped by interface,
    /// N dropped by xmppscope`.
    #[must_use]
    pub fn line(&self) -> String {
        let opt = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
        format!(
            "{} packet{} captured, {} received by filter, {} dropped by kernel, {} dropped by interface, {} dropped by xmppscope",
            self.captured,
            if self.captured == 1 { "" } else { "s" },
            opt(self.received),
            opt(self.kernel_dropped),
            opt(self.if_dropped),
            self.queue_dropped
        )
    }
}

/// What [`Running::next`] has.
#[derive(Debug)]
pub enum Next {
    Frame(Frame),
    /// Nothing within the timeout.
    Idle,
    /// Every capture thread has ended and every frame was delivered.
    End,
}

/// Capture threads running.
pub struct Running {
    rx: Receiver<Frame>,
    threads: Vec<Option<JoinHandle<()>>>,
    shared: Arc<Shared>,
    infos: Vec<InterfaceInfo>,
    merger: Merger<Frame>,
    delivered: Vec<u64>,
    stop: Arc<AtomicBool>,
    disconnected: bool,
}

impl Running {
    #[must_use]
    pub fn interfaces(&self) -> &[InterfaceInfo] {
        &self.infos
    }

    /// Ask the capture threads to stop; frames already captured are still
    /// delivered by [`Self::next`] until [`Next::End`].
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// The next frame in time order across interfaces, waiting at most
    /// `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Next {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(f) = self.ready() {
                return self.deliver(f);
            }
            if self.disconnected {
                return match self.merger.pop() {
                    Some(f) => self.deliver(f),
                    None => Next::End,
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Next::Idle;
            }
            // With frames held for the merge, look again soon: a watermark
            // moves without anything arriving.
            let mut wait = deadline - now;
            if !self.merger.is_empty() {
                wait = wait.min(Duration::from_millis(5));
            }
            match self.rx.recv_timeout(wait) {
                Ok(f) => self.merger.push(f.ts, f),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.disconnected = true,
            }
        }
    }

    /// A frame whose turn has come, if any.
    fn ready(&mut self) -> Option<Frame> {
        if self.infos.len() == 1 {
            // One interface: its own order is the order.
            if let Some(f) = self.merger.pop() {
                return Some(f);
            }
            return self.rx.try_recv().ok();
        }
        // Read the watermarks before draining the channel: every frame a
        // thread sent before publishing its watermark is then in the
        // channel (or already here).
        let wm = self.watermark();
        for _ in 0..QUEUE_FRAMES {
            match self.rx.try_recv() {
                Ok(f) => self.merger.push(f.ts, f),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.disconnected = true;
                    break;
                }
            }
        }
        self.merger.pop_ready(wm)
    }

    fn watermark(&self) -> Timestamp {
        let min = self
            .shared
            .ifaces
            .iter()
            .map(|c| c.watermark.load(Ordering::Acquire))
            .min()
            .unwrap_or(i64::MAX);
        // A thread that cannot report (stuck in a read) holds frames back
        // at most this long.
        ns_ts(min.max(now_ns() - MAX_HOLD_NS))
    }

    fn deliver(&mut self, f: Frame) -> Next {
        self.shared
            .in_flight
            .fetch_sub(f.data.len(), Ordering::AcqRel);
        if let Some(d) = self.delivered.get_mut(f.iface) {
            *d += 1;
        }
        Next::Frame(f)
    }

    /// Statistics so far, per interface.
    #[must_use]
    pub fn stats(&self) -> Vec<InterfaceStats> {
        self.infos
            .iter()
            .zip(&self.shared.ifaces)
            .zip(&self.delivered)
            .map(|((info, c), &captured)| {
                let known = c.stats_known.load(Ordering::Acquire);
                let get = |a: &AtomicU64| known.then(|| a.load(Ordering::Relaxed));
                InterfaceStats {
                    name: info.name.clone(),
                    captured,
                    received: get(&c.received),
                    kernel_dropped: get(&c.kernel_dropped),
                    if_dropped: get(&c.if_dropped),
                    queue_dropped: c.queue_dropped.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Frames not delivered: still queued when the consumer stopped early
    /// (`-c`). Call after [`Self::finish`]-style draining if needed.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.merger.len()
    }

    /// Stop, wait for the threads, and return the final statistics and
    /// the errors that ended capture threads (interface, message).
    #[must_use]
    pub fn finish(mut self) -> (Vec<InterfaceStats>, Vec<(String, String)>) {
        self.stop();
        // Threads notice the flag within one read timeout.
        let limit = Instant::now() + READ_TIMEOUT * 20;
        for h in &mut self.threads {
            while h.as_ref().is_some_and(|h| !h.is_finished()) && Instant::now() < limit {
                // Keep the channel moving so that nothing can wait on it.
                while self.rx.try_recv().is_ok() {}
                std::thread::sleep(Duration::from_millis(5));
            }
            // A thread stuck inside libpcap is left behind; the process is
            // about to exit.
            if let Some(handle) = h.take()
                && handle.is_finished()
            {
                let _ = handle.join();
            }
        }
        let stats = self.stats();
        let errors = self
            .infos
            .iter()
            .zip(&self.shared.ifaces)
            .filter_map(|(info, c)| {
                let e = c.error.lock().ok()?.clone()?;
                Some((info.name.clone(), e))
            })
            .collect();
        (stats, errors)
    }
}

/// `-D`: one interface per line with its description, flags and
/// addresses (like `tcpdump -D`, plus addresses).
///
/// # Errors
/// libpcap cannot list the interfaces, or `out` fails.
pub fn write_device_list(out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let list = devices()?;
    for (n, d) in list.iter().enumerate() {
        let mut flags = Vec::new();
        if d.flags.is_up() {
            flags.push("Up");
        }
        if d.flags.is_running() {
            flags.push("Running");
        }
        if d.flags.is_wireless() {
            flags.push("Wireless");
        }
        if d.flags.is_loopback() {
            flags.push("Loopback");
        }
        match d.flags.connection_status {
            pcap::ConnectionStatus::Connected => flags.push("Connected"),
            pcap::ConnectionStatus::Disconnected => flags.push("Disconnected"),
            pcap::ConnectionStatus::Unknown | pcap::ConnectionStatus::NotApplicable => {}
        }
        write!(out, "{}. {}", n + 1, d.name)?;
        if let Some(desc) = d.desc.as_deref().filter(|s| !s.is_empty()) {
            write!(out, " ({desc})")?;
        }
        writeln!(out, " [{}]", flags.join(", "))?;
        for a in &d.addresses {
            match a.netmask.and_then(prefix_len) {
                Some(p) => writeln!(out, "    {}/{p}", a.addr)?,
                None => writeln!(out, "    {}", a.addr)?,
            }
        }
    }
    if list.is_empty() {
        writeln!(
            out,
            "(no interfaces: libpcap found none it may open; try as root)"
        )?;
    }
    Ok(())
}

/// The prefix length of a contiguous netmask.
fn prefix_len(mask: std::net::IpAddr) -> Option<u32> {
    let (ones, bits) = match mask {
        std::net::IpAddr::V4(m) => (u32::from(m).leading_ones(), u32::from(m).count_ones()),
        std::net::IpAddr::V6(m) => (u128::from(m).leading_ones(), u128::from(m).count_ones()),
    };
    (ones == bits).then_some(ones)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn frame(n: u8, len: usize) -> Frame {
        Frame {
            iface: 0,
            ts: Timestamp {
                secs: i64::from(n),
                nanos: 0,
            },
            wire_len: 60,
            data: vec![n; len],
        }
    }

    fn shared(max_bytes: usize) -> Shared {
        Shared {
            ifaces: vec![IfaceCounters::new()],
            in_flight: AtomicUsize::new(0),
            max_bytes,
        }
    }

    /// A full channel drops and counts, never blocks; a closed one says so.
    #[test]
    fn full_channel_drops_and_counts() {
        let (tx, rx) = mpsc::sync_channel(2);
        let sh = shared(1 << 20);
        let c = &sh.ifaces[0];
        assert_eq!(offer(&tx, frame(1, 10), &sh, c), Offer::Queued);
        assert_eq!(offer(&tx, frame(2, 10), &sh, c), Offer::Queued);
        for n in 3..10 {
            assert_eq!(offer(&tx, frame(n, 10), &sh, c), Offer::Dropped);
        }
        assert_eq!(c.queued.load(Ordering::Relaxed), 2);
        assert_eq!(c.queue_dropped.load(Ordering::Relaxed), 7);
        assert_eq!(sh.in_flight.load(Ordering::Relaxed), 20);
        assert_eq!(rx.recv().unwrap().data[0], 1);
        assert_eq!(offer(&tx, frame(10, 10), &sh, c), Offer::Queued);
        drop(rx);
        assert_eq!(offer(&tx, frame(11, 10), &sh, c), Offer::Closed);
    }

    /// The byte budget drops big frames before the frame count is reached.
    #[test]
    fn byte_budget_drops() {
        let (tx, _rx) = mpsc::sync_channel(100);
        let sh = shared(1000);
        let c = &sh.ifaces[0];
        assert_eq!(offer(&tx, frame(1, 600), &sh, c), Offer::Queued);
        assert_eq!(offer(&tx, frame(2, 600), &sh, c), Offer::Dropped);
        assert_eq!(offer(&tx, frame(3, 400), &sh, c), Offer::Queued);
        assert_eq!(sh.in_flight.load(Ordering::Relaxed), 1000);
        assert_eq!(c.queue_dropped.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn stats_line_like_tcpdump() {
        let s = InterfaceStats {
            name: "lo".into(),
            captured: 12,
            received: Some(14),
            kernel_dropped: Some(0),
            if_dropped: Some(0),
            queue_dropped: 2,
        };
        assert_eq!(
            s.line(),
            "12 packets captured, 14 received by filter, 0 dropped by kernel, 0 dropped by interface, 2 dropped by xmppscope"
        );
        let t = InterfaceStats::total(&[
            s.clone(),
            InterfaceStats {
                received: None,
                ..s
            },
        ]);
        assert_eq!(t.captured, 24);
        assert_eq!(t.received, None);
        assert_eq!(t.queue_dropped, 4);
        assert!(t.line().contains("? received by filter"));
    }

    #[test]
    fn prefix_lengths() {
        assert_eq!(prefix_len("255.0.0.0".parse().unwrap()), Some(8));
        assert_eq!(prefix_len("255.255.255.255".parse().unwrap()), Some(32));
        assert_eq!(prefix_len("255.0.255.0".parse().unwrap()), None);
        assert_eq!(
            prefix_len("ffff:ffff:ffff:ffff::".parse().unwrap()),
            Some(64)
        );
    }

    #[test]
    fn timestamps_round_trip_through_nanoseconds() {
        let t = Timestamp {
            secs: 1_700_000_000,
            nanos: 5,
        };
        assert_eq!(ns_ts(ts_ns(t)), t);
        assert_eq!(
            ns_ts(-1),
            Timestamp {
                secs: -1,
                nanos: 999_999_999
            }
        );
    }

    /// Merging across interfaces through a real `Running` (no libpcap):
    /// frames from two fake interfaces come out in time order once both
    /// watermarks have passed them.
    #[test]
    fn running_merges_by_watermark() {
        let (tx, rx) = mpsc::sync_channel(16);
        let sh = Arc::new(Shared {
            ifaces: vec![IfaceCounters::new(), IfaceCounters::new()],
            in_flight: AtomicUsize::new(0),
            max_bytes: 1 << 20,
        });
        let info = |n: &str| InterfaceInfo {
            name: n.into(),
            description: None,
            linktype: 1,
            snaplen: 100,
        };
        let mut r = Running {
            rx,
            threads: Vec::new(),
            shared: Arc::clone(&sh),
            infos: vec![info("a"), info("b")],
            merger: Merger::default(),
            delivered: vec![0, 0],
            stop: Arc::new(AtomicBool::new(false)),
            disconnected: false,
        };
        let base = now_ns() + 60_000_000_000; // in the future: no fallback release
        let mk = |iface, off: i64| Frame {
            iface,
            ts: ns_ts(base + off),
            wire_len: 1,
            data: vec![u8::try_from(off).unwrap()],
        };
        for (i, off) in [(1, 20), (0, 10), (1, 40), (0, 30)] {
            assert_eq!(offer(&tx, mk(i, off), &sh, &sh.ifaces[i]), Offer::Queued);
        }
        // Interface b has vouched up to 40, a only up to 10.
        sh.ifaces[1].watermark.store(base + 40, Ordering::SeqCst);
        sh.ifaces[0].watermark.store(base + 10, Ordering::SeqCst);
        let mut got = Vec::new();
        while let Next::Frame(f) = r.next(Duration::from_millis(20)) {
            got.push(f.data[0]);
        }
        assert_eq!(got, [10]);
        sh.ifaces[0].ended(None);
        drop(tx);
        loop {
            match r.next(Duration::from_millis(20)) {
                Next::Frame(f) => got.push(f.data[0]),
                Next::End => break,
                Next::Idle => panic!("idle with frames pending"),
            }
        }
        assert_eq!(got, [10, 20, 30, 40]);
        assert_eq!(sh.in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(r.stats()[1].captured, 2);
    }
}

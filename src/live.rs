//! Live capture: `-i IFACE` (repeatable), `-w FILE`, `-D`, `-Z USER`.
//!
//! ```text
//! capture thread (lo)   ─┐  bounded channel          ┌─ savefile (-w)
//! capture thread (eth0) ─┴─ owned frames ─ merge ────┴─ Dissector ─ printers (run.rs)
//!                           (drops counted)  by time
//! ```
//!
//! [`source`] opens the interfaces and runs the capture threads,
//! [`savefile`] writes pcapng or pcap, [`privs`] drops root. [`run_live`] is
//! the headless consumer: the same [`Dissector`] and the same printers as
//! `-r`, so that a live capture and the savefile read back with `-r` print
//! the same lines.

pub mod merge;
pub mod privs;
pub mod savefile;
pub mod source;

use std::io::{self, BufWriter, Write};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::cli::Settings;
use crate::dissect::Dissector;
use crate::model::{Packet, Timestamp};
use crate::run::{Outcome, Printer};

pub use source::{
    CaptureOptions, DEFAULT_FILTER, DEFAULT_SNAPLEN, Frame, InterfaceStats, LiveError, Next,
    Opened, Running,
};

/// Everything a live run needs beyond the dissector's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveOptions {
    pub capture: CaptureOptions,
    /// `-w FILE` (`-` is standard output).
    pub savefile: Option<String>,
    /// `-Z USER`.
    pub user: Option<String>,
    /// `-a duration:SECS`.
    pub duration: Option<Duration>,
}

/// The default capture filter, plus the ports `--port` adds (so that
/// decode-as ports are also captured).
#[must_use]
pub fn default_filter(extra_ports: &[u16]) -> String {
    let mut f = DEFAULT_FILTER.to_owned();
    for p in extra_ports {
        if ![5222, 5223, 5269].contains(p) {
            f.push_str(&format!(" or tcp port {p}"));
        }
    }
    f
}

/// Parse one tshark-style autostop condition (`-a`): `duration:SECS` or
/// `packets:N`.
///
/// # Errors
/// Anything else.
pub fn parse_autostop(cond: &str) -> Result<Autostop, String> {
    let (key, value) = cond
        .split_once(':')
        .ok_or_else(|| format!("-a {cond}: expected duration:SECS or packets:N"))?;
    match key {
        "duration" => {
            let secs: f64 = value
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s > 0.0)
                .ok_or_else(|| format!("-a {cond}: SECS must be a positive number"))?;
            Ok(Autostop::Duration(Duration::from_secs_f64(secs.min(1e9))))
        }
        "packets" => {
            let n: u64 = value
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("-a {cond}: N must be a positive integer"))?;
            Ok(Autostop::Packets(n))
        }
        _ => Err(format!(
            "-a {cond}: unknown condition '{key}'; xmppscope knows duration:SECS and packets:N"
        )),
    }
}

/// A stop condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Autostop {
    Duration(Duration),
    Packets(u64),
}

/// `-D`: list the interfaces on standard output.
///
/// # Errors
/// libpcap cannot list them, or standard output fails.
pub fn list_interfaces() -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    source::write_device_list(&mut out)?;
    out.flush()?;
    Ok(())
}

/// Make SIGINT, SIGTERM and SIGHUP set `stop`; a second one while stopping
/// ends the process at once (status 128 + signal), for a stop that hangs.
fn install_signal_handlers(stop: &Arc<AtomicBool>) -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // Order matters (signal-hook's docs): the shutdown checks the flag
        // before this signal sets it.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(stop))?;
        signal_hook::flag::register(sig, Arc::clone(stop))?;
    }
    Ok(())
}

/// How long the consumer waits for a frame before looking at the clock
/// and the signals again.
const TICK: Duration = Duration::from_millis(100);

/// Run headless on live interfaces until a signal, `-c`, `-a`, or an error.
///
/// # Errors
/// An interface cannot be opened or fails mid-capture, the savefile cannot
/// be written, privileges cannot be dropped, or standard output fails. In
/// every case the savefile is finished (valid) and the statistics are
/// printed before returning.
pub fn run_live(settings: Settings) -> anyhow::Result<Outcome> {
    let Some(live) = settings.live.clone() else {
        anyhow::bail!("no interface to capture on (-i IFACE; -D lists them)");
    };
    let stop = Arc::new(AtomicBool::new(false));
    install_signal_handlers(&stop).context("cannot install the signal handlers")?;

    let opened = Opened::open(&live.capture)?;
    let mut save = match &live.savefile {
        Some(path) => {
            let ifaces = opened
                .interfaces()
                .iter()
                .map(|i| savefile::Interface {
                    name: i.name.clone(),
                    description: i.description.clone(),
                    linktype: i.linktype,
                    snaplen: i.snaplen,
                    filter: live.capture.filter.clone(),
                })
                .collect();
            Some(savefile::Savefile::create(
                path,
                savefile::Format::for_path(path),
                ifaces,
            )?)
        }
        None => None,
    };
    if let Some(user) = &live.user {
        privs::drop_to(user)?;
    }
    for i in opened.interfaces() {
        let filter = if live.capture.filter.is_empty() {
            "none (everything)".to_owned()
        } else {
            format!("'{}'", live.capture.filter)
        };
        eprintln!(
            "xmppscope: listening on {}, link-type {}, snapshot length {} bytes, capture filter {filter}",
            i.name,
            source::linktype_label(i.linktype),
            i.snaplen
        );
    }

    let linktypes: Vec<i32> = opened.interfaces().iter().map(|i| i.linktype).collect();
    if live.savefile.is_some() && linktypes.iter().any(|&l| Some(&l) != linktypes.first()) {
        eprintln!(
            "xmppscope: warning: the interfaces have different link types; tshark reads the pcapng savefile, but libpcap (and so xmppscope -r) reads only files with one link type"
        );
    }
    let mut running = opened.start(Arc::clone(&stop));
    let deadline = live.duration.map(|d| Instant::now() + d);
    // With nothing to show and no statistics, only the savefile needs the
    // frames (like tcpdump -w).
    let dissect = !settings.quiet || settings.stats;
    let count = settings.count;
    let mut dissector = Dissector::new(settings.dissector.clone());
    // A client started with SSLKEYLOGFILE appends its secrets as it signs
    // in: re-read the file once a second so its flows are decrypted live.
    let mut keylog = settings.dissector.keylog.as_deref().cloned();
    let stdout = io::stdout();
    let mut printer = Printer::new(BufWriter::with_capacity(1 << 16, stdout.lock()), settings);
    let mut packet = Packet::default();

    let mut number = 0u64;
    let mut captured = vec![0u64; linktypes.len()];
    let mut first: Option<Timestamp> = None;
    let mut last: Option<Timestamp> = None;
    let mut failure: Option<anyhow::Error> = None;
    let mut output_failed = false;
    let mut dirty = false;
    let mut drops_reported = 0u64;
    let mut next_drop_check = Instant::now() + Duration::from_secs(1);

    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            running.stop();
        }
        if Instant::now() >= next_drop_check {
            next_drop_check = Instant::now() + Duration::from_secs(1);
            if let Some(k) = keylog.as_mut()
                && let Ok(true) = k.refresh()
            {
                dissector.set_keylog(std::sync::Arc::new(k.clone()));
            }
            let dropped: u64 = running.stats().iter().map(|s| s.queue_dropped).sum();
            if dropped > drops_reported {
                eprintln!(
                    "xmppscope: warning: {} packets dropped so far: the dissector is behind the capture",
                    dropped
                );
                drops_reported = dropped;
            }
        }
        // Flush once caught up: lines and savefile are current whenever
        // the capture is quiet, and batched when it is busy.
        let next = match running.next(Duration::ZERO) {
            Next::Idle => {
                if dirty {
                    dirty = false;
                    if let Some(s) = save.as_mut()
                        && let Err(e) = s.flush()
                    {
                        failure.get_or_insert(e.into());
                        running.stop();
                    }
                    if !output_failed && let Err(e) = printer.flush() {
                        output_failed = true;
                        failure.get_or_insert(e.into());
                        running.stop();
                    }
                }
                running.next(TICK)
            }
            other => other,
        };
        let frame = match next {
            Next::Frame(f) => f,
            Next::Idle => continue,
            Next::End => break,
        };
        if failure.is_some() || count.is_some_and(|c| number >= c) {
            // Stopping: what is still queued is not wanted.
            continue;
        }
        number += 1;
        if let Some(c) = captured.get_mut(frame.iface) {
            *c += 1;
        }
        first.get_or_insert(frame.ts);
        last = Some(frame.ts);
        dirty = true;
        if let Some(s) = save.as_mut()
            && let Err(e) = s.write_packet(frame.iface, frame.ts, frame.wire_len, &frame.data)
        {
            failure = Some(e.into());
            running.stop();
            continue;
        }
        if dissect {
            let linktype = linktypes.get(frame.iface).copied().unwrap_or_default();
            if let Err(e) = printer.frame(
                &mut dissector,
                &mut packet,
                number,
                frame.ts,
                linktype,
                &frame.data,
                frame.wire_len,
            ) {
                output_failed = true;
                failure = Some(e.into());
                running.stop();
                continue;
            }
        }
        if count.is_some_and(|c| number >= c) {
            running.stop();
        }
    }

    let (mut stats, errors) = running.finish();
    for (s, c) in stats.iter_mut().zip(&captured) {
        s.captured = *c;
    }
    if dissect
        && !output_failed
        && let Err(e) = printer.finish(&mut dissector, number)
    {
        failure.get_or_insert(e);
    }
    if let Some(s) = save {
        let totals: Vec<savefile::InterfaceTotals> = stats
            .iter()
            .map(|st| savefile::InterfaceTotals {
                start: first,
                end: last,
                received: st.received,
                if_dropped: st.if_dropped,
                os_dropped: st.kernel_dropped,
                delivered: st.captured,
            })
            .collect();
        if let Err(e) = s.finish(&totals) {
            failure.get_or_insert(e.into());
        }
    }
    eprint!("{}", stats_report(&stats));
    if let Some((iface, message)) = errors.into_iter().next() {
        // An interface failing is the first cause; later errors follow it.
        return Err(anyhow::anyhow!(
            "capture on {iface} stopped: {message}{}",
            if live.savefile.is_some() {
                " (the savefile holds everything captured before)"
            } else {
                ""
            }
        ));
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(Outcome::Complete),
    }
}

/// The end-of-capture statistics: one line for one interface, else one
/// per interface and a total.
#[must_use]
pub fn stats_report(stats: &[InterfaceStats]) -> String {
    match stats {
        [one] => format!("{}\n", one.line()),
        many => {
            let mut s = String::new();
            for st in many {
                s.push_str(&format!("{}: {}\n", st.name, st.line()));
            }
            s.push_str(&format!("total: {}\n", InterfaceStats::total(many).line()));
            s
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Result<Settings, String> {
        use clap::Parser as _;
        let mut argv = vec!["xmppscope"];
        argv.extend_from_slice(args);
        crate::cli::Args::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .into_settings()
    }

    /// The live flags end up in the settings, tcpdump's and tshark's way.
    #[test]
    fn flags_to_settings() {
        let s = settings(&[
            "-i",
            "lo",
            "-i",
            "eth0",
            "-f",
            "",
            "-s",
            "1500",
            "-p",
            "-B",
            "4096",
            "-w",
            "x.pcap",
            "-Z",
            "nobody",
            "-a",
            "duration:2",
            "-c",
            "9",
            "-a",
            "packets:5",
        ])
        .unwrap();
        let live = s.live.unwrap();
        assert_eq!(live.capture.interfaces, ["lo", "eth0"]);
        assert_eq!(live.capture.filter, "");
        assert_eq!(live.capture.snaplen, 1500);
        assert!(!live.capture.promisc);
        assert_eq!(live.capture.buffer_bytes, Some(4096 * 1024));
        assert_eq!(live.savefile.as_deref(), Some("x.pcap"));
        assert_eq!(live.user.as_deref(), Some("nobody"));
        assert_eq!(live.duration, Some(Duration::from_secs(2)));
        assert_eq!(s.count, Some(5));
        // Defaults: the XMPP ports plus --port, tcpdump's snaplen, promiscuous.
        let live = settings(&["-i", "lo", "--port", "7400"])
            .unwrap()
            .live
            .unwrap();
        assert_eq!(live.capture.filter, default_filter(&[7400]));
        assert_eq!(live.capture.snaplen, DEFAULT_SNAPLEN);
        assert!(live.capture.promisc);
        // -w - is standard output: nothing else goes there.
        assert!(settings(&["-i", "lo", "-w", "-"]).unwrap().quiet);
        assert!(settings(&["-i", "lo", "-w", "-", "--stats"]).is_err());
        // Reading a file has no live part; live flags without -i are refused.
        assert!(settings(&["-r", "x.pcap"]).unwrap().live.is_none());
        assert!(
            settings(&["-r", "x.pcap", "-w", "y"])
                .unwrap_err()
                .contains("-w is for live")
        );
        assert!(settings(&[]).is_err());
    }

    #[test]
    fn default_filter_adds_decode_as_ports() {
        assert_eq!(default_filter(&[]), DEFAULT_FILTER);
        assert_eq!(
            default_filter(&[5222, 7400]),
            format!("{DEFAULT_FILTER} or tcp port 7400")
        );
    }

    #[test]
    fn autostop_conditions() {
        assert_eq!(
            parse_autostop("duration:2.5").unwrap(),
            Autostop::Duration(Duration::from_millis(2500))
        );
        assert_eq!(parse_autostop("packets:10").unwrap(), Autostop::Packets(10));
        for bad in [
            "duration",
            "duration:0",
            "duration:-1",
            "packets:x",
            "filesize:10",
        ] {
            assert!(parse_autostop(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn report_per_interface_and_total() {
        let s = |n: &str, c| InterfaceStats {
            name: n.into(),
            captured: c,
            received: Some(c),
            kernel_dropped: Some(0),
            if_dropped: Some(0),
            queue_dropped: 0,
        };
        assert_eq!(
            stats_report(&[s("lo", 3)]),
            "3 packets captured, 3 received by filter, 0 dropped by kernel, 0 dropped by interface, 0 dropped by xmppscope\n"
        );
        let two = stats_report(&[s("lo", 1), s("eth0", 2)]);
        assert!(two.starts_with("lo: 1 packet captured,"), "{two}");
        assert!(
            two.contains("\ntotal: 3 packets captured, 3 received"),
            "{two}"
        );
    }
}

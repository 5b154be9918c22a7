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
pub mod session;
pub mod source;

use std::io::{self, BufWriter, Write};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;

use crate::cli::Settings;
use crate::dissect::Dissector;
use crate::model::Packet;
use crate::run::{Outcome, Printer};

pub use session::{Ended, Session, Step};
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
    /// `-a filesize:KB`: stop once the savefile holds this many bytes.
    pub filesize: Option<u64>,
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

/// Parse one tshark-style autostop condition (`-a`): `duration:SECS`,
/// `packets:N` or `filesize:KB` (of the savefile, kB = 1000 bytes).
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
        "filesize" => {
            let kb: u64 = value
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("-a {cond}: KB must be a positive integer"))?;
            // tshark's kB: 1000 bytes.
            Ok(Autostop::Filesize(kb.saturating_mul(1000)))
        }
        _ => Err(format!(
            "-a {cond}: unknown condition '{key}'; xmppscope knows duration:SECS, packets:N and filesize:KB"
        )),
    }
}

/// A stop condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Autostop {
    Duration(Duration),
    Packets(u64),
    /// Bytes of savefile.
    Filesize(u64),
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
    let mut session = Session::start(
        &live,
        None,
        settings.count,
        settings.dissector.keylog.as_deref(),
        Arc::clone(&stop),
        true,
    )?;
    // With nothing to show and no statistics, only the savefile needs the
    // frames (like tcpdump -w).
    let dissect = !settings.quiet || settings.stats;
    let mut dissector = Dissector::new(settings.dissector.clone());
    let stdout = io::stdout();
    let mut printer = Printer::new(BufWriter::with_capacity(1 << 16, stdout.lock()), settings);
    let mut packet = Packet::default();
    let mut output_failed = false;

    loop {
        let (number, linktype, frame) = match session.next(TICK) {
            Step::Frame {
                number,
                linktype,
                frame,
                ..
            } => (number, linktype, frame),
            Step::Idle { caught_up } => {
                // Lines are current whenever the capture is quiet, and
                // batched when it is busy.
                if caught_up
                    && !output_failed
                    && let Err(e) = printer.flush()
                {
                    output_failed = true;
                    session.fail(e.into());
                }
                continue;
            }
            Step::End => break,
        };
        if let Some(k) = session.take_keylog() {
            dissector.set_keylog(k);
        }
        if dissect
            && !output_failed
            && let Err(e) = printer.frame(
                &mut dissector,
                &mut packet,
                number,
                frame.ts,
                linktype,
                &frame.data,
                frame.wire_len,
            )
        {
            output_failed = true;
            session.fail(e.into());
        }
    }
    if dissect
        && !output_failed
        && let Err(e) = printer.finish(&mut dissector, session.packets())
    {
        session.fail(e);
    }
    let ended = session.finish();
    eprint!("{}", stats_report(&ended.stats));
    match ended.error {
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
        // -r with -w exports, printing nothing unless -P (like tshark).
        let s = settings(&["-r", "x.pcap", "-w", "y"]).unwrap();
        assert!(s.live.is_none() && s.quiet && !s.tui);
        assert_eq!(s.export.as_deref(), Some("y"));
        assert!(!settings(&["-r", "x.pcap", "-w", "y", "-P"]).unwrap().quiet);
        assert!(settings(&["-r", "x.pcap", "-w", "-", "-P"]).is_err());
        assert!(settings(&["-r", "x.pcap", "-w", "-", "--roster"]).is_err());
        assert!(settings(&["-r", "x.pcap", "-w", "y", "--tui"]).is_err());
        assert!(settings(&["-r", "x.pcap", "-f", "tcp"]).is_err());
        // Live captures keep their savefile in the live options.
        assert!(settings(&["-i", "lo", "-w", "y"]).unwrap().export.is_none());
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
        assert_eq!(
            parse_autostop("filesize:64").unwrap(),
            Autostop::Filesize(64_000)
        );
        for bad in [
            "duration",
            "duration:0",
            "duration:-1",
            "packets:x",
            "filesize:0",
            "filesize:1.5",
            "files:3",
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

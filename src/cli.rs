//! Command-line flags (clap) → a validated [`Settings`]. Nothing below this
//! module sees clap.

use std::net::IpAddr;

use clap::{Parser, ValueEnum};

use crate::dissect::{Config, Limits};

const EXAMPLES: &str = "\
Examples:
  xmppscope -r captures/prosody-plain-signin-chat.pcap
      in a terminal: the interactive TUI (packets, decoded XML, bytes; ? lists the keys);
      piped, or with --no-tui: tshark-like lines, one per packet that completes XMPP events
  xmppscope -r capture.pcapng -T ndjson | jq 'select(.chat_state) | [.frame, .from, .chat_state]'
      one JSON object per event
  xmppscope -r big.pcap -q --stats
      counts only: stanzas by type, chat states, sign-in steps, expert notes, limits hit
  tcpdump -i lo -w - 'tcp port 5222' | xmppscope -r -
      read a capture from standard input
  xmppscope -r capture.pcap --host 203.0.113.5 --port 7400
      only that host's flows; also treat port 7400 as XMPP (like decode-as)
  xmppscope -r captures/prosody-starttls-signin.pcap --keylog captures/prosody-starttls-signin.keys
      decrypt STARTTLS / direct TLS with an NSS key log (SSLKEYLOGFILE is used when no --keylog)
  xmppscope -r captures/prosody-plain-signin-chat.pcap --jid alice@localhost -w alice.pcapng
      export alice's flows (every packet: handshake, ACKs, FIN) as pcapng; prints nothing (-P: also the lines)
  xmppscope -r capture.pcap --host talk.example.com -w talk.pcap
      export the packets to or from the addresses the capture resolves for that name (classic pcap for .pcap)
  xmppscope -i lo -w signin.pcapng
      live: in a terminal, the TUI fills as packets arrive (status line: interface, filter,
      packets, drops; q stops and finishes the savefile); piped or --no-tui: lines (Ctrl-C stops)
  xmppscope -i eth0 -i wlan0 -q -w all.pcapng -f '' -a duration:60 -Z nobody
      like tcpdump -w: two interfaces merged by time, all traffic, one minute, as nobody
  xmppscope -D
      the interfaces libpcap can capture on, with addresses

Exit status: 0 success; 1 the capture was cut short (everything before the cut was shown); 2 error.
Live capture needs root or: sudo setcap cap_net_raw,cap_net_admin=eip $(command -v xmppscope)";

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// tshark-like lines.
    Text,
    /// One JSON object per event (and per frame-level expert note).
    Ndjson,
    /// With --stats: the statistics as one JSON object.
    Json,
}

/// `--transcript-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TranscriptFormat {
    Text,
    Markdown,
}

/// xmppscope: see what an XMPP (Jabber, Google Talk) client says on the wire.
#[derive(Debug, Parser)]
#[command(name = "xmppscope", version, after_help = EXAMPLES, disable_version_flag = true)]
#[allow(clippy::struct_excessive_bools)]
pub struct Args {
    /// Print the version (`-V` is tshark's verbose flag here).
    #[arg(long, action = clap::ArgAction::Version)]
    pub version: Option<bool>,

    /// Read packets from a pcap or pcapng file ('-' for standard input).
    #[arg(
        short = 'r',
        long = "read-file",
        value_name = "FILE",
        conflicts_with = "interfaces"
    )]
    pub read_file: Option<String>,

    /// Capture live on this interface (repeatable: one capture thread each,
    /// merged by time; -D lists them).
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interfaces: Vec<String>,

    /// List the interfaces libpcap can capture on, with descriptions and
    /// addresses, and exit.
    #[arg(short = 'D', long = "list-interfaces")]
    pub list_interfaces: bool,

    /// Capture filter (BPF, compiled by libpcap); '' captures everything.
    /// Default: tcp port 5222 or tcp port 5223 or tcp port 5269, plus each --port.
    #[arg(short = 'f', value_name = "BPF")]
    pub capture_filter: Option<String>,

    /// Snapshot length: bytes kept of each packet (default 262144).
    #[arg(short = 's', long = "snapshot-length", value_name = "BYTES")]
    pub snaplen: Option<u32>,

    /// Do not put the interfaces into promiscuous mode.
    #[arg(short = 'p', long = "no-promiscuous-mode")]
    pub no_promisc: bool,

    /// Kernel capture buffer, in KiB (default: libpcap's).
    #[arg(short = 'B', long = "buffer-size", value_name = "KiB")]
    pub buffer_kib: Option<u32>,

    /// Write packets to FILE: pcapng, or classic pcap when the name ends in
    /// .pcap ('-': standard output, implies -q). Live: every captured packet.
    /// With -r: the packets of the flows --jid selects and the packets to or
    /// from the --host addresses (every packet without them), original
    /// timestamps and lengths; nothing is printed then unless -P (as tshark).
    #[arg(short = 'w', value_name = "FILE")]
    pub write_file: Option<String>,

    /// With -r and -w: print the packet lines too (tshark's -P). Live
    /// captures print them anyway unless -q.
    #[arg(short = 'P', long = "print")]
    pub print: bool,

    /// After opening the interfaces and the savefile, drop root privileges
    /// to USER (its uid, primary group and supplementary groups).
    #[arg(short = 'Z', long = "relinquish-privileges", value_name = "USER")]
    pub user: Option<String>,

    /// Stop the live capture on a condition: duration:SECS, packets:N or
    /// filesize:KB of the savefile, kB = 1000 bytes (repeatable, like tshark).
    #[arg(short = 'a', long = "autostop", value_name = "COND")]
    pub autostop: Vec<String>,

    /// Output format.
    #[arg(short = 'T', long = "format", value_enum, default_value = "text")]
    pub format: Format,

    /// Do not print packets (use with --stats).
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Print statistics at the end (packets, flows, events by kind, expert notes, limits hit).
    #[arg(long)]
    pub stats: bool,

    /// Print each event's details (XML, notes) under its line.
    #[arg(short = 'V', long)]
    pub verbose: bool,

    /// Only flows with this address on either side (repeatable, IPv4 or IPv6),
    /// or a name the capture itself resolves (DNS answers, TLS SNI, stream
    /// domains; read in a first pass over the file, so not with -r -).
    #[arg(long = "host", value_name = "ADDR|NAME")]
    pub hosts: Vec<String>,

    /// Only this account's flows (bare or full JID: by bound JID, stream
    /// from, stanza from/to; decided in a first pass over the file).
    #[arg(long = "jid", value_name = "JID")]
    pub jid: Option<String>,

    /// Print each XMPP flow's sign-in, step by step, instead of packets.
    #[arg(long)]
    pub signin: bool,

    /// Print the chat transcript per conversation instead of packets (-T json: JSON).
    #[arg(long)]
    pub transcript: bool,

    /// Format of --transcript in text mode.
    #[arg(long, value_enum, default_value = "text")]
    pub transcript_format: TranscriptFormat,

    /// Print presence and typing over time per contact instead of packets.
    #[arg(long)]
    pub timeline: bool,

    /// Print the rosters rebuilt from the capture instead of packets (-T ndjson: one item per line).
    #[arg(long)]
    pub roster: bool,

    /// Treat this TCP port as XMPP, like Wireshark's decode-as (repeatable).
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,

    /// Stop after this many packets.
    #[arg(short = 'c', value_name = "N")]
    pub count: Option<u64>,

    /// Show addresses, not the names the capture taught (DNS answers, SNI,
    /// stream domains; xmppscope never asks a resolver).
    #[arg(short = 'n')]
    pub no_resolve: bool,

    /// Reveal SASL passwords, proofs and tokens instead of masking them.
    #[arg(long)]
    pub show_secrets: bool,

    /// Open the interactive TUI on -r FILE or on the live capture of -i (the
    /// default when standard output is a terminal, except with --host NAME or --jid).
    #[arg(long, conflicts_with = "no_tui")]
    pub tui: bool,

    /// Print lines even when standard output is a terminal.
    #[arg(long)]
    pub no_tui: bool,

    /// Dissect a file with N threads, the flows split between them; the
    /// output is the same as one thread's, except that the flow table limit
    /// (--max-flows) is split between the threads. Default: the cores
    /// (at most 2) for files of 4 MB and more, else 1; 1 with -T ndjson
    /// and -V, where the printer is the bottleneck.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Limit: concurrent TCP flows tracked (the least recently seen are evicted past it).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_flows)]
    pub max_flows: usize,

    /// Limit: seconds (capture time) after which an idle flow is closed.
    #[arg(long, value_name = "SECS", default_value_t = Limits::default().idle_timeout_secs)]
    pub idle_timeout: u64,

    /// Limit: out-of-order bytes held per direction of a flow.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().tcp.max_buffered_bytes)]
    pub max_tcp_buffer: usize,

    /// Limit: holes (held out-of-order ranges) per direction of a flow.
    #[arg(long, value_name = "N", default_value_t = Limits::default().tcp.max_holes)]
    pub max_tcp_holes: usize,

    /// Limit: bytes of one XML element (a stanza with its children).
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().framer.max_element_bytes)]
    pub max_element_bytes: usize,

    /// Limit: element nesting depth inside a stanza.
    #[arg(long, value_name = "N", default_value_t = Limits::default().framer.max_depth)]
    pub max_depth: usize,

    /// Limit: unanswered IQ requests remembered per flow for request/response pairing.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_pending_iqs)]
    pub max_pending_iqs: usize,

    /// Print the expert notes at the end, grouped by severity and kind, with counts.
    #[arg(long)]
    pub expert: bool,

    /// Statistics, like tshark's -z: only `expert` (same as --expert).
    #[arg(short = 'z', value_name = "STAT")]
    pub z: Vec<String>,

    /// Decrypt TLS with this NSS key log file (CLIENT_RANDOM and TLS 1.3 traffic secrets).
    /// Without it, the SSLKEYLOGFILE environment variable is used if set.
    #[arg(long = "keylog", value_name = "FILE")]
    pub keylog: Option<std::path::PathBuf>,

    /// Limit: bytes of one TLS handshake message decoded.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().tls.max_handshake_bytes)]
    pub max_tls_handshake: usize,
}

/// Everything the run needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The capture file (`-r`); empty for a live capture.
    pub path: String,
    /// `-i` and the other live flags; `None` reads `path`.
    pub live: Option<crate::live::LiveOptions>,
    pub format: Format,
    pub quiet: bool,
    pub stats: bool,
    pub verbose: bool,
    /// Print the expert notes grouped at the end.
    pub expert: bool,
    pub count: Option<u64>,
    /// Run the interactive TUI on `path` instead of printing.
    pub tui: bool,
    pub dissector: Config,
    /// Dissector threads for a file (`--threads`).
    pub threads: usize,
    /// `--host NAME`: names resolved from the capture before the run.
    pub host_names: Vec<String>,
    /// Show names learnt from the capture (not `-n`).
    pub resolve_names: bool,
    /// `--jid`.
    pub jid: Option<String>,
    /// The story views asked for (`--signin`, `--transcript`, …).
    pub views: crate::views::Wanted,
    /// `-r FILE -w OUT`: the selected packets are written to OUT (`-` is
    /// standard output). Live captures keep theirs in `live.savefile`.
    pub export: Option<String>,
}

impl Args {
    /// # Errors
    /// Flags that do not fit together.
    pub fn into_settings(self) -> Result<Settings, String> {
        let views = crate::views::Wanted {
            signin: self.signin,
            transcript: self.transcript,
            timeline: self.timeline,
            roster: self.roster,
            markdown: self.transcript_format == TranscriptFormat::Markdown,
        };
        if self.format == Format::Json && !self.stats && !views.any() {
            return Err(
                "-T json is the format of --stats and of the views; use -T ndjson for events"
                    .into(),
            );
        }
        let mut host_addrs: Vec<IpAddr> = Vec::new();
        let mut host_names = Vec::new();
        for h in &self.hosts {
            match h.trim_matches(['[', ']']).parse::<IpAddr>() {
                Ok(a) => host_addrs.push(a),
                Err(_) if !h.is_empty() && h.len() <= 255 => host_names.push(h.clone()),
                Err(_) => return Err(format!("--host {h}: not an address or a name")),
            }
        }
        let defaults = Limits::default();
        let limits = Limits {
            max_flows: self.max_flows.max(1),
            idle_timeout_secs: self.idle_timeout,
            tcp: crate::tcp::reassembly::ReassemblyLimits {
                max_buffered_bytes: self.max_tcp_buffer,
                max_holes: self.max_tcp_holes.max(1),
                ..defaults.tcp
            },
            framer: crate::xmpp::framer::FramerLimits {
                max_element_bytes: self.max_element_bytes.max(64),
                max_depth: self.max_depth.max(1),
            },
            tls: crate::tls::TlsLimits {
                max_handshake_bytes: self.max_tls_handshake,
            },
            max_pending_iqs: self.max_pending_iqs.max(1),
        };
        let mut expert = self.expert;
        for z in &self.z {
            // tshark spells it `-z expert` (optionally `expert,LEVEL`).
            if z == "expert" || z.starts_with("expert,") {
                expert = true;
            } else {
                return Err(format!("-z {z}: only -z expert is supported"));
            }
        }
        let keep_xml = self.verbose || self.format == Format::Ndjson || views.any();
        let keylog = match (&self.keylog, std::env::var_os("SSLKEYLOGFILE")) {
            (Some(p), _) => Some(
                crate::keylog::KeyLog::open(p)
                    .map_err(|e| format!("--keylog {}: {e}", p.display()))?,
            ),
            (None, Some(p)) if !p.is_empty() => {
                let p = std::path::PathBuf::from(p);
                match crate::keylog::KeyLog::open(&p) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        eprintln!(
                            "xmppscope: warning: SSLKEYLOGFILE {}: {e}; not decrypting",
                            p.display()
                        );
                        None
                    }
                }
            }
            _ => None,
        };
        if let Some(k) = keylog.as_ref().filter(|k| k.unusable_lines > 0) {
            eprintln!(
                "xmppscope: warning: {} (lines it could not use are skipped)",
                k.summary()
            );
        }
        let live = self.live_options()?;
        if live.is_none() && self.read_file.is_none() {
            return Err(
                "nothing to read: -r FILE reads a capture, -i IFACE captures live (-D lists the interfaces)"
                    .into(),
            );
        }
        let mut count = self.count;
        for cond in &self.autostop {
            if let crate::live::Autostop::Packets(n) = crate::live::parse_autostop(cond)? {
                count = Some(count.map_or(n, |c| c.min(n)));
            }
        }
        // `-w -`: the savefile is standard output, so nothing else is.
        let to_stdout = self.write_file.as_deref() == Some("-");
        if to_stdout && (self.stats || expert) {
            return Err(
                "-w - writes the capture to standard output; --stats and --expert cannot go there too"
                    .into(),
            );
        }
        if to_stdout && self.print {
            return Err(
                "-w - writes the capture to standard output; -P cannot print lines there too"
                    .into(),
            );
        }
        if to_stdout && views.any() {
            return Err(
                "-w - writes the capture to standard output; the views cannot go there too".into(),
            );
        }
        let export = if live.is_none() {
            self.write_file.clone()
        } else {
            None
        };
        if let (Some(out), Some(read)) = (&export, &self.read_file) {
            check_not_input(read, out)?;
        }
        // tshark -r IN -w OUT prints nothing unless -P; the views, --stats
        // and --expert were asked for by name and still print.
        let quiet = self.quiet || to_stdout || (export.is_some() && !self.print);
        if live.is_some() && (!host_names.is_empty() || self.jid.is_some()) {
            return Err(
                "--host NAME and --jid are decided in a first pass over a file: use -r FILE (--host ADDR works live)"
                    .into(),
            );
        }
        if self.tui && export.is_some() {
            return Err("-r FILE -w OUT exports without the TUI; drop --tui or -w".into());
        }
        if self.tui
            && live
                .as_ref()
                .is_some_and(|l| l.savefile.as_deref() == Some("-"))
        {
            return Err(
                "--tui draws on standard output, where -w - writes the packets: give -w a file name"
                    .into(),
            );
        }
        // The TUI when asked, or by default when standard output is a
        // terminal and no printing flag was given (termshark's habit), for
        // a file and for a live capture alike.
        let tui = !views.any()
            && export.is_none()
            && (self.tui
                // By default the name and account filters run headless;
                // `--tui` takes them too (decided in a first pass).
                || (!self.no_tui
                    && host_names.is_empty()
                    && self.jid.is_none()
                    && std::io::IsTerminal::is_terminal(&std::io::stdout())
                    && self.format == Format::Text
                    && !quiet
                    && !self.stats
                    && !self.verbose
                    && !expert));
        // Nothing but the figures is printed: no lines, -V, NDJSON events,
        // expert notes, views, export, TUI, and no name or account filter
        // (they read names and addresses from the events). Then the
        // dissector skips what the statistics do not read.
        let counts_only = quiet
            && self.stats
            && !expert
            && !self.verbose
            && self.format != Format::Ndjson
            && !views.any()
            && export.is_none()
            && live.as_ref().is_none_or(|l| l.savefile.is_none())
            && host_names.is_empty()
            && self.jid.is_none()
            && !tui;
        // NDJSON and -V keep the printer busiest: a second dissector gains
        // a quarter there and its allocator heap costs a third more memory
        // (NDJSON on 1 GB: 64 MiB against 36), so they stay on one thread
        // unless asked.
        let printer_bound = self.format == Format::Ndjson || self.verbose;
        let threads = self.threads.map_or_else(
            || {
                if printer_bound {
                    1
                } else {
                    auto_threads(self.read_file.as_deref())
                }
            },
            |n| n.clamp(1, 64),
        );
        Ok(Settings {
            path: self.read_file.unwrap_or_default(),
            live,
            format: self.format,
            quiet,
            stats: self.stats,
            verbose: self.verbose,
            expert,
            count,
            tui,
            dissector: Config {
                limits,
                xmpp_ports: self.ports,
                hosts: host_addrs,
                keep_xml: (keep_xml && !quiet) || views.any(),
                keep_tree: false,
                show_secrets: self.show_secrets,
                counts_only,
                keylog: keylog.map(std::sync::Arc::new),
                shard: 0,
                shards: 0,
            },
            threads,
            host_names,
            resolve_names: !self.no_resolve,
            jid: self.jid,
            views,
            export,
        })
    }

    /// The live flags, validated (`None` without `-i`).
    fn live_options(&self) -> Result<Option<crate::live::LiveOptions>, String> {
        if self.interfaces.is_empty() {
            let live_only = [
                ("-f", self.capture_filter.is_some()),
                ("-s", self.snaplen.is_some()),
                ("-p", self.no_promisc),
                ("-B", self.buffer_kib.is_some()),
                ("-Z", self.user.is_some()),
                ("-a", !self.autostop.is_empty()),
            ];
            if let Some((flag, _)) = live_only.iter().find(|(_, set)| *set) {
                return Err(format!(
                    "{flag} is for live captures: add -i IFACE (-D lists the interfaces)"
                ));
            }
            return Ok(None);
        }
        let snaplen = self.snaplen.unwrap_or(crate::live::DEFAULT_SNAPLEN);
        let mut duration = None;
        let mut filesize = None;
        for cond in &self.autostop {
            match crate::live::parse_autostop(cond)? {
                crate::live::Autostop::Duration(d) => {
                    duration = Some(duration.map_or(d, |x: std::time::Duration| x.min(d)));
                }
                crate::live::Autostop::Filesize(n) => {
                    filesize = Some(filesize.map_or(n, |x: u64| x.min(n)));
                }
                crate::live::Autostop::Packets(_) => {}
            }
        }
        if filesize.is_some() && self.write_file.as_deref().is_none_or(|w| w == "-") {
            return Err(
                "-a filesize:KB stops when the savefile reaches that size: add -w FILE".into(),
            );
        }
        if snaplen > i32::MAX as u32 {
            return Err(format!("-s {snaplen}: at most {}", i32::MAX));
        }
        let filter = self
            .capture_filter
            .clone()
            .unwrap_or_else(|| crate::live::default_filter(&self.ports));
        Ok(Some(crate::live::LiveOptions {
            capture: crate::live::CaptureOptions {
                interfaces: self.interfaces.clone(),
                filter,
                snaplen,
                promisc: !self.no_promisc,
                buffer_bytes: self.buffer_kib.map(|k| k.saturating_mul(1024)),
            },
            savefile: self.write_file.clone(),
            user: self.user.clone(),
            duration,
            filesize,
        }))
    }
}

/// `-w OUT` must not be the file `-r IN` reads: creating OUT would empty
/// it before it is read.
fn check_not_input(read: &str, out: &str) -> Result<(), String> {
    if read == "-" || out == "-" {
        return Ok(());
    }
    let same = match (std::fs::metadata(read), std::fs::metadata(out)) {
        (Ok(a), Ok(b)) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                a.dev() == b.dev() && a.ino() == b.ino()
            }
            #[cfg(not(unix))]
            {
                let _ = (a, b);
                std::fs::canonicalize(read).ok() == std::fs::canonicalize(out).ok()
            }
        }
        _ => false,
    };
    if same {
        return Err(format!(
            "-w {out} is the capture -r reads; writing it would destroy it: choose another file"
        ));
    }
    Ok(())
}

/// Files smaller than this are dissected on one thread unless `--threads`
/// says otherwise: starting threads would cost more than it gains.
pub const AUTO_THREADS_MIN_BYTES: u64 = 4_000_000;
/// Threads `--threads` defaults to at most: the reader and the printer stay
/// one each, and the shards' results in flight grow with their number (four
/// threads took NDJSON on 1 GB to 68 MiB, past the 64 MiB goal).
pub const AUTO_THREADS_MAX: usize = 2;

/// `--threads` when not given: the cores, up to [`AUTO_THREADS_MAX`], for
/// a regular file of [`AUTO_THREADS_MIN_BYTES`] or more; else one.
fn auto_threads(path: Option<&str>) -> usize {
    let big = path
        .filter(|p| *p != "-")
        .and_then(|p| std::fs::metadata(p).ok())
        .is_some_and(|m| m.is_file() && m.len() >= AUTO_THREADS_MIN_BYTES);
    if !big {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get().min(AUTO_THREADS_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// clap's own consistency checks (duplicate short flags and the like).
    #[test]
    fn flags_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn json_format_needs_stats() {
        let a = Args::try_parse_from(["xmppscope", "-r", "x.pcap", "-T", "json"]).unwrap();
        assert!(a.into_settings().is_err());
        let a = Args::try_parse_from(["xmppscope", "-r", "x.pcap", "-V", "-n", "--host", "::1"])
            .unwrap();
        let s = a.into_settings().unwrap();
        assert!(s.verbose && s.dissector.keep_xml);
        assert_eq!(s.dissector.hosts.len(), 1);
    }

    /// NDJSON and -V stay on one thread unless asked; other outputs of a
    /// large file take the cores (up to the maximum).
    #[test]
    fn printer_bound_outputs_default_to_one_thread() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.pcap");
        std::fs::write(&big, vec![0u8; AUTO_THREADS_MIN_BYTES as usize]).unwrap();
        let path = big.to_str().unwrap();
        let threads = |extra: &[&str]| {
            let mut argv = vec!["xmppscope", "-r", path, "--no-tui"];
            argv.extend_from_slice(extra);
            Args::try_parse_from(argv)
                .unwrap()
                .into_settings()
                .unwrap()
                .threads
        };
        let cores =
            std::thread::available_parallelism().map_or(1, |n| n.get().min(AUTO_THREADS_MAX));
        assert_eq!(threads(&[]), cores);
        assert_eq!(threads(&["-q", "--stats"]), cores);
        assert_eq!(threads(&["-T", "ndjson"]), 1);
        assert_eq!(threads(&["-V"]), 1);
        assert_eq!(threads(&["-T", "ndjson", "--threads", "2"]), 2);
    }

    /// The dissector counts only when nothing but the figures is printed.
    #[test]
    fn counts_only_when_only_the_figures_print() {
        let counts_only = |extra: &[&str]| {
            let mut argv = vec!["xmppscope", "-r", "x.pcap", "--no-tui"];
            argv.extend_from_slice(extra);
            Args::try_parse_from(argv)
                .unwrap()
                .into_settings()
                .unwrap()
                .dissector
                .counts_only
        };
        assert!(counts_only(&["-q", "--stats"]));
        assert!(counts_only(&["-q", "--stats", "-T", "json"]));
        assert!(counts_only(&["-q", "--stats", "--threads", "2", "-n"]));
        assert!(!counts_only(&[]));
        assert!(!counts_only(&["--stats"]));
        assert!(!counts_only(&["-q"]));
        assert!(!counts_only(&["-q", "--stats", "--expert"]));
        assert!(!counts_only(&["-q", "--stats", "-z", "expert"]));
        assert!(!counts_only(&["-q", "--stats", "-V"]));
        assert!(!counts_only(&["-q", "--stats", "-T", "ndjson"]));
        assert!(!counts_only(&["-q", "--stats", "--signin"]));
        assert!(!counts_only(&["-q", "--stats", "--jid", "a@b"]));
        assert!(!counts_only(&["-q", "--stats", "--host", "example.com"]));
        assert!(!counts_only(&["-q", "--stats", "-w", "/tmp/out.pcap"]));
    }
}

//! `xmppscope`: flags → settings → run. Everything else lives in the library.

use std::process::ExitCode;

/// A dissector allocates many small, short-lived strings per stanza;
/// mimalloc serves them faster than the system allocator (see bench/).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use xmppscope::cli::Args;
use xmppscope::run::{Outcome, run_file};

fn main() -> ExitCode {
    // mimalloc asks for transparent huge pages; each thread's heap then
    // costs 2 MiB steps of resident memory. Small pages keep the peak RSS
    // bounded (bench/RESULTS.md). Best effort: an error changes nothing.
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
    let args = Args::parse();
    if args.list_interfaces {
        return match xmppscope::live::list_interfaces() {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("xmppscope: {err:#}");
                ExitCode::from(2)
            }
        };
    }
    let settings = match args.into_settings() {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("xmppscope: {msg}");
            return ExitCode::from(2);
        }
    };
    let result = if settings.tui {
        xmppscope::ui::run_tui(settings)
    } else if settings.live.is_some() {
        xmppscope::live::run_live(settings)
    } else {
        run_file(settings)
    };
    match result {
        Ok(Outcome::Complete) => ExitCode::SUCCESS,
        Ok(Outcome::Truncated(msg)) => {
            eprintln!("xmppscope: warning: {msg}");
            ExitCode::from(1)
        }
        Ok(Outcome::Interrupted { message, signal }) => {
            eprintln!("xmppscope: {message}");
            // What a shell reports for a process the signal ended.
            ExitCode::from(u8::try_from(128 + signal).unwrap_or(130))
        }
        Err(err) => {
            // A closed pipe (`| head`) is not an error.
            if err
                .chain()
                .filter_map(|c| {
                    c.downcast_ref::<std::io::Error>().or_else(|| {
                        c.downcast_ref::<xmppscope::live::savefile::SaveError>()
                            .and_then(xmppscope::live::savefile::SaveError::io_error)
                    })
                })
                .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("xmppscope: {err:#}");
            ExitCode::from(2)
        }
    }
}

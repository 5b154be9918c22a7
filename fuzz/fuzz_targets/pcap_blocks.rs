//! Fuzz target, differential: a classic pcap file read in blocks
//! (`capture::Bulk`, what the reader thread uses) against libpcap reading
//! the same file (`capture::FileSource::next_frame`). Whenever libpcap
//! opens the file and the block reader takes it, both must give the same
//! frames (number, time, lengths, bytes) and end the same way (complete,
//! cut short with the same words, or the same error).
//!
//! The input is the file itself, written to a per-process temporary path.

#![no_main]

use libfuzzer_sys::fuzz_target;
use xmppscope::capture::{Batch, Bulk, End, FileSource};

type Frame = (u64, i64, u32, u32, Vec<u8>);

fn by_libpcap(path: &str) -> Option<(Vec<Frame>, Option<String>)> {
    let mut src = FileSource::open(path).ok()?;
    let mut frames = Vec::new();
    loop {
        match src.next_frame() {
            Ok(Some(f)) => frames.push((f.number, f.ts.secs, f.ts.nanos, f.len, f.data.to_vec())),
            Ok(None) => return Some((frames, None)),
            Err(e) => {
                let end = FileSource::classify(&e).map(|e| e.to_string());
                let e = e.to_string().replace("libpcap error: ", "");
                return Some((frames, Some(end.unwrap_or_else(|| format!("error: {e}")))));
            }
        }
    }
}

fn by_blocks(path: &str) -> Option<(Vec<Frame>, Option<String>)> {
    let mut bulk = Bulk::open(path, path)?;
    let mut frames = Vec::new();
    loop {
        let mut batch = Batch::default();
        let end = bulk.fill(&mut batch, u64::MAX, &|_| 0);
        for f in &batch.frames {
            let data = batch.bytes.get(f.start..f.end).unwrap_or_default().to_vec();
            frames.push((f.number, f.ts.secs, f.ts.nanos, f.len, data));
        }
        match end {
            Ok(None) => {}
            Ok(Some(End::Complete)) => return Some((frames, None)),
            Ok(Some(e)) => return Some((frames, Some(e.to_string()))),
            Err(e) => return Some((frames, Some(format!("error: {e}")))),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("pcap_blocks-{}.pcap", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Some(p) = path.to_str() else { return };
    let lib = by_libpcap(p);
    let blocks = by_blocks(p);
    if let (Some(l), Some(b)) = (&lib, &blocks) {
        assert_eq!(l.0.len(), b.0.len(), "frame count");
        assert!(l.0 == b.0, "frame contents");
        assert_eq!(l.1, b.1, "how the file ends");
    }
});

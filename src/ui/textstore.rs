//! The index's Info strings, LZ4-compressed in blocks of [`BLOCK`] strings.
//!
//! Strings are appended in id order. The last, unfinished block stays
//! uncompressed (so live mode and the first screen never wait for a
//! compressor); a full block is compressed into one append-only buffer.
//! Reading a string decompresses its block (about 10 KB, a few
//! microseconds) into a small cache of recent blocks, so drawing a screen
//! or scanning all strings in id order stays cheap, and the memory beyond
//! the compressed text is bounded.
//!
//! A block's uncompressed form is the LEB128 length of each of its strings,
//! then their bytes.

use std::cell::RefCell;

/// Strings per compressed block.
pub const BLOCK: usize = 128;
/// Decompressed blocks kept (some 600 KB of text).
pub const CACHED: usize = 64;

/// One decompressed block: its strings' text and where each one starts
/// (`BLOCK + 1` entries).
#[derive(Debug, Default)]
struct Unpacked {
    block: usize,
    text: String,
    starts: Vec<u32>,
}

impl Unpacked {
    fn get(&self, k: usize) -> &str {
        let (Some(&a), Some(&b)) = (self.starts.get(k), self.starts.get(k + 1)) else {
            return "";
        };
        self.text.get(a as usize..b as usize).unwrap_or("")
    }

    fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.starts.capacity() * 4
    }
}

/// Direct-mapped: block `b` lives in slot `b % CACHED`. The rows of any
/// stretch of the capture refer to fewer than [`CACHED`] neighbouring
/// blocks (see the builder's de-duplication window), so a scan in row
/// order decompresses each block about once.
#[derive(Debug, Default)]
struct Cache {
    slots: Vec<Option<Unpacked>>,
    /// Blocks decompressed so far (for the figures).
    misses: u64,
}
#[derive(Debug, Default)]
pub struct TextStore {
    /// The compressed blocks, one after the other.
    packed: Vec<u8>,
    /// Where each compressed block ends in `packed`.
    ends: Vec<u64>,
    /// The strings of the unfinished block.
    tail: String,
    /// Where each of them starts in `tail`.
    tail_starts: Vec<u32>,
    cache: RefCell<Cache>,
}

fn put_varint(out: &mut Vec<u8>, mut v: usize) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn get_varint(b: &[u8], at: &mut usize) -> Option<usize> {
    let mut v: usize = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

impl TextStore {
    /// Strings held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ends.len() * BLOCK + self.tail_starts.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append a string; its id is the previous [`Self::len`].
    pub fn push(&mut self, s: &str) {
        // A string longer than u32 can address is cut (Info strings are
        // short; this only keeps the arithmetic honest).
        let s = if self.tail.len() + s.len() > u32::MAX as usize {
            ""
        } else {
            s
        };
        self.tail_starts
            .push(u32::try_from(self.tail.len()).unwrap_or(u32::MAX));
        self.tail.push_str(s);
        if self.tail_starts.len() >= BLOCK {
            self.seal();
        }
    }

    /// Compress the full tail block.
    fn seal(&mut self) {
        let mut raw = Vec::with_capacity(self.tail.len() + 2 * BLOCK);
        let n = self.tail_starts.len();
        for k in 0..n {
            let a = self.tail_starts.get(k).map_or(0, |v| *v as usize);
            let b = self
                .tail_starts
                .get(k + 1)
                .map_or(self.tail.len(), |v| *v as usize);
            put_varint(&mut raw, b.saturating_sub(a));
        }
        raw.extend_from_slice(self.tail.as_bytes());
        let c = lz4_flex::block::compress_prepend_size(&raw);
        self.packed.extend_from_slice(&c);
        self.ends.push(self.packed.len() as u64);
        self.tail.clear();
        self.tail_starts.clear();
    }

    fn unpack(&self, block: usize) -> Option<Unpacked> {
        let end = usize::try_from(*self.ends.get(block)?).ok()?;
        let start = match block.checked_sub(1) {
            Some(p) => usize::try_from(*self.ends.get(p)?).ok()?,
            None => 0,
        };
        let raw = lz4_flex::block::decompress_size_prepended(self.packed.get(start..end)?).ok()?;
        let mut at = 0;
        let mut lens = [0usize; BLOCK];
        for l in &mut lens {
            *l = get_varint(&raw, &mut at)?;
        }
        // Where each string starts in `raw`, after the lengths.
        let mut starts = Vec::with_capacity(BLOCK + 1);
        let mut pos = at;
        starts.push(u32::try_from(pos).ok()?);
        for l in lens {
            pos = pos.checked_add(l)?;
            starts.push(u32::try_from(pos).ok()?);
        }
        if raw.len() != pos {
            return None;
        }
        // Drop the lengths; the text is checked as UTF-8 once per block.
        let mut text = raw;
        text.drain(..at);
        let text = String::from_utf8(text).ok()?;
        for st in &mut starts {
            *st = st.checked_sub(u32::try_from(at).ok()?)?;
        }
        Some(Unpacked {
            block,
            text,
            starts,
        })
    }

    /// Call `f` with string `id` ("" if unknown).
    pub fn with<R>(&self, id: usize, f: impl FnOnce(&str) -> R) -> R {
        let block = id / BLOCK;
        let k = id % BLOCK;
        if block >= self.ends.len() {
            if block > self.ends.len() {
                return f("");
            }
            let a = self.tail_starts.get(k).map(|v| *v as usize);
            let b = self
                .tail_starts
                .get(k + 1)
                .map_or(self.tail.len(), |v| *v as usize);
            return f(a.and_then(|a| self.tail.get(a..b)).unwrap_or(""));
        }
        let Ok(mut cache) = self.cache.try_borrow_mut() else {
            // Re-entered from inside `f`: do without the cache.
            return match self.unpack(block) {
                Some(u) => f(u.get(k)),
                None => f(""),
            };
        };
        if cache.slots.len() < CACHED {
            cache.slots.resize_with(CACHED, || None);
        }
        let slot = block % CACHED;
        let hit = cache
            .slots
            .get(slot)
            .is_some_and(|u| u.as_ref().is_some_and(|u| u.block == block));
        if !hit {
            let Some(u) = self.unpack(block) else {
                return f("");
            };
            cache.misses += 1;
            if let Some(s) = cache.slots.get_mut(slot) {
                *s = Some(u);
            }
        }
        match cache.slots.get(slot) {
            Some(Some(u)) => f(u.get(k)),
            _ => f(""),
        }
    }

    /// String `id`, copied ("" if unknown).
    #[must_use]
    pub fn get(&self, id: usize) -> String {
        self.with(id, str::to_owned)
    }

    /// Give back the slack of the growing buffers.
    pub fn shrink(&mut self) {
        self.packed.shrink_to_fit();
        self.ends.shrink_to_fit();
    }

    /// Heap bytes: (compressed text, block table, unfinished block and the
    /// cache of decompressed blocks).
    #[must_use]
    pub fn heap_parts(&self) -> (usize, usize, usize) {
        let cache = self.cache.try_borrow().map_or(0, |c| {
            c.slots.capacity() * std::mem::size_of::<Option<Unpacked>>()
                + c.slots
                    .iter()
                    .flatten()
                    .map(Unpacked::heap_bytes)
                    .sum::<usize>()
        });
        (
            self.packed.capacity(),
            self.ends.capacity() * 8,
            self.tail.capacity() + self.tail_starts.capacity() * 4 + cache,
        )
    }

    /// Blocks decompressed into the cache so far (for the figures).
    #[must_use]
    pub fn misses(&self) -> u64 {
        self.cache.try_borrow().map_or(0, |c| c.misses)
    }

    /// Uncompressed bytes of the strings held (for the figures).
    #[must_use]
    pub fn raw_bytes(&self) -> usize {
        let mut n = self.tail.len();
        for b in 0..self.ends.len() {
            n += self.unpack(b).map(|u| u.text.len()).unwrap_or(0);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn string(&mut self) -> String {
            let len = match self.next() % 10 {
                0 => 0,
                1 => (self.next() % 2000) as usize,
                _ => (self.next() % 120) as usize,
            };
            let alphabet = ['a', 'b', 'Z', ' ', '→', 'é', '"', '\0', '🔒', '<'];
            (0..len)
                .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize])
                .collect()
        }
    }

    #[test]
    fn random_strings_round_trip_at_every_index() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let mut store = TextStore::default();
        let mut want = Vec::new();
        for i in 0..(BLOCK * 5 + 17) {
            let s = rng.string();
            store.push(&s);
            want.push(s);
            // Every string stays readable while appending, tail included.
            assert_eq!(store.get(i), want[i], "at {i} while appending");
            assert_eq!(store.len(), i + 1);
        }
        assert_eq!(store.ends.len(), 5, "five full blocks compressed");
        // In order, backwards and jumping around (cache misses and hits).
        for (i, s) in want.iter().enumerate() {
            assert_eq!(&store.get(i), s, "at {i}");
        }
        for (i, s) in want.iter().enumerate().rev() {
            assert_eq!(&store.get(i), s, "at {i}");
        }
        for _ in 0..2000 {
            let i = (rng.next() % want.len() as u64) as usize;
            assert_eq!(store.get(i), want[i], "at {i}");
        }
        let raw: usize = want.iter().map(String::len).sum();
        assert_eq!(store.raw_bytes(), raw);
    }

    #[test]
    fn block_boundaries_and_empty_strings() {
        let mut store = TextStore::default();
        for i in 0..(BLOCK * 3) {
            // Empty strings at and around every block boundary.
            let s = if i % BLOCK == 0 || i % BLOCK == BLOCK - 1 || i % 7 == 3 {
                String::new()
            } else {
                format!("IQ(result) {i}")
            };
            store.push(&s);
        }
        for i in 0..(BLOCK * 3) {
            let want = if i % BLOCK == 0 || i % BLOCK == BLOCK - 1 || i % 7 == 3 {
                String::new()
            } else {
                format!("IQ(result) {i}")
            };
            assert_eq!(store.get(i), want, "at {i}");
        }
        assert!(store.tail.is_empty(), "exactly three blocks: no tail");
        // Past the end, and far past it: empty, no panic.
        assert_eq!(store.get(BLOCK * 3), "");
        assert_eq!(store.get(BLOCK * 1000 + 5), "");
        assert_eq!(store.get(usize::MAX), "");
    }

    #[test]
    fn cache_stays_bounded_and_reentrant_reads_work() {
        let mut store = TextStore::default();
        for i in 0..(BLOCK * (CACHED + 4)) {
            store.push(&format!("MESSAGE chat {i}"));
        }
        for b in 0..(CACHED + 4) {
            assert_eq!(
                store.get(b * BLOCK + 1),
                format!("MESSAGE chat {}", b * BLOCK + 1)
            );
        }
        assert_eq!(store.cache.borrow().slots.len(), CACHED);
        assert_eq!(store.cache.borrow().slots.iter().flatten().count(), CACHED);
        // A read from inside a read (the cache is busy): still right.
        let both = store.with(3, |a| format!("{a}|{}", store.get(BLOCK * 2 + 9)));
        assert_eq!(
            both,
            format!("MESSAGE chat 3|MESSAGE chat {}", BLOCK * 2 + 9)
        );
    }

    #[test]
    fn compresses_repetitive_text() {
        let mut store = TextStore::default();
        for i in 0..(BLOCK * 8) {
            store.push(&format!(
                "MESSAGE chat alice@example.org/phone → bob@example.org \"hi {i}\""
            ));
        }
        let (packed, _, _) = store.heap_parts();
        assert!(
            packed * 3 < store.raw_bytes(),
            "{packed} vs {}",
            store.raw_bytes()
        );
    }

    #[test]
    fn varints_round_trip() {
        for v in [0usize, 1, 127, 128, 300, 16_383, 16_384, u32::MAX as usize] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut at = 0;
            assert_eq!(get_varint(&b, &mut at), Some(v));
            assert_eq!(at, b.len());
        }
        let mut at = 0;
        assert_eq!(get_varint(&[0x80, 0x80], &mut at), None, "truncated");
    }
}

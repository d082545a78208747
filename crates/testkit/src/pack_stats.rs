//! How far a pack's deltas are from their bases: the locality that decides how much a streaming resolver must
//! cache or read back (design notes §3). `make_fixture locality PACK` prints it; `scripts/bench.sh` runs it on
//! the pack a `git clone --mirror` received, i.e. on the layout the server sent.
//!
//! Reads the `.idx` beside the pack for entry offsets and, per entry, only its header and the first bytes of
//! its zlib stream (a delta's result size), with positioned reads: a pack of any size is analysed in little
//! memory.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZFlush};

/// Sizes of the LRU caches [`analyse`] simulates, in MiB (the range the design notes measured).
pub const CACHE_MIB: [u64; 3] = [16, 64, 256];

/// Locality figures of one pack.
#[derive(Debug, Default)]
pub struct Locality {
    /// Bytes of the pack file.
    pub pack_bytes: u64,
    /// Entries in the pack.
    pub objects: u64,
    /// Entries stored as OFS deltas.
    pub ofs_deltas: u64,
    /// Entries stored as REF deltas.
    pub ref_deltas: u64,
    /// Longest delta chain (a whole object has depth 0).
    pub max_depth: u32,
    /// Sum of the inflated sizes of all objects (deltas counted at their result size).
    pub inflated_bytes: u64,
    /// OFS deltas whose base starts more than 1, 64 and 256 MiB before them in the pack.
    pub ofs_farther_than: [u64; 3],
    /// For each of [`CACHE_MIB`]: deltas whose base a single pass in pack order finds in an LRU cache of
    /// inflated objects (every object inserted as it is read, bases touched when used) of that size.
    pub lru_hits: [u64; 3],
}

/// Limits of [`Locality::ofs_farther_than`], in MiB.
const FAR_MIB: [u64; 3] = [1, 64, 256];

impl fmt::Display for Locality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let deltas = self.ofs_deltas + self.ref_deltas;
        let pct = |n: u64, of: u64| {
            if of == 0 {
                0.0
            } else {
                100.0 * n as f64 / of as f64
            }
        };
        write!(
            f,
            "{} objects, {:.0} MiB pack, {:.0} MiB inflated; {} deltas ({} OFS, {} REF), max depth {}; OFS bases",
            self.objects,
            self.pack_bytes as f64 / 1048576.0,
            self.inflated_bytes as f64 / 1048576.0,
            deltas,
            self.ofs_deltas,
            self.ref_deltas,
            self.max_depth
        )?;
        for (mib, n) in FAR_MIB.iter().zip(self.ofs_farther_than) {
            write!(f, " > {mib} MiB behind: {:.1}%,", pct(n, self.ofs_deltas))?;
        }
        write!(f, " LRU of inflated objects finds the base of")?;
        for (i, (mib, n)) in CACHE_MIB.iter().zip(self.lru_hits).enumerate() {
            let sep = if i + 1 == CACHE_MIB.len() { "" } else { "," };
            write!(f, " {:.1}% ({mib} MiB){sep}", pct(n, deltas))?;
        }
        write!(f, " of deltas")
    }
}

/// One entry of the pack: its inflated size and base (an index into the entries sorted by offset).
struct Entry {
    size: u64,
    base: Option<usize>,
}

/// Reads the `(id, offset)` of every entry from a version 2 `.idx`.
fn read_idx(path: &Path) -> io::Result<Vec<([u8; 20], u64)>> {
    let data = std::fs::read(path)?;
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {what}", path.display()),
        )
    };
    if data.len() < 8 + 1024 || data[..8] != [0xff, b't', b'O', b'c', 0, 0, 0, 2] {
        return Err(bad("not a version 2 pack index"));
    }
    let u32_at = |at: usize| u32::from_be_bytes(data[at..at + 4].try_into().expect("4 bytes"));
    let n = u32_at(8 + 255 * 4) as usize;
    let ids = 8 + 1024;
    let offsets = ids + n * 20 + n * 4;
    let large = offsets + n * 4;
    if data.len() < large {
        return Err(bad("truncated"));
    }
    (0..n)
        .map(|i| {
            let id: [u8; 20] = data[ids + i * 20..ids + i * 20 + 20]
                .try_into()
                .expect("20 bytes");
            let small = u32_at(offsets + i * 4);
            let offset = if small & 0x8000_0000 == 0 {
                u64::from(small)
            } else {
                let at = large + (small & 0x7fff_ffff) as usize * 8;
                let bytes = data
                    .get(at..at + 8)
                    .ok_or_else(|| bad("truncated large offsets"))?;
                u64::from_be_bytes(bytes.try_into().expect("8 bytes"))
            };
            Ok((id, offset))
        })
        .collect()
}

/// Reads a delta's header varint from `data` at `*at`.
fn varint(data: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = *data.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
}

/// Analyses the pack at `pack` (its `.idx` must be beside it).
pub fn analyse(pack: &Path) -> io::Result<Locality> {
    let mut index = read_idx(&pack.with_extension("idx"))?;
    index.sort_by_key(|&(_, offset)| offset);
    let by_id: HashMap<[u8; 20], usize> = index
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, i))
        .collect();
    let file = File::open(pack)?;
    let pack_bytes = file.metadata()?.len();
    let bad = |what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {what}", pack.display()),
        )
    };

    let mut stats = Locality {
        pack_bytes,
        objects: index.len() as u64,
        ..Locality::default()
    };
    let mut entries: Vec<Entry> = Vec::with_capacity(index.len());
    let mut depth: Vec<u32> = Vec::with_capacity(index.len());
    let mut buf = vec![0u8; 4096];
    let mut inflated = [0u8; 32];
    for (i, &(_, offset)) in index.iter().enumerate() {
        let end = index.get(i + 1).map_or(pack_bytes - 20, |&(_, next)| next);
        let len = ((end - offset) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..len], offset)?;
        let header = &buf[..len];
        let mut at = 0;
        let mut byte = *header
            .first()
            .ok_or_else(|| bad(format!("empty entry at {offset}")))?;
        let kind = (byte >> 4) & 7;
        let mut size = u64::from(byte & 15);
        let mut shift = 4;
        while byte & 0x80 != 0 {
            at += 1;
            byte = *header
                .get(at)
                .ok_or_else(|| bad(format!("truncated header at {offset}")))?;
            size |= u64::from(byte & 0x7f) << shift;
            shift += 7;
        }
        at += 1;
        let base =
            match kind {
                6 => {
                    let mut byte = header[at];
                    at += 1;
                    let mut distance = u64::from(byte & 0x7f);
                    while byte & 0x80 != 0 {
                        byte = header[at];
                        at += 1;
                        distance = ((distance + 1) << 7) | u64::from(byte & 0x7f);
                    }
                    let base_offset = offset.checked_sub(distance).ok_or_else(|| {
                        bad(format!("OFS delta at {offset} points before the pack"))
                    })?;
                    stats.ofs_deltas += 1;
                    for (k, mib) in FAR_MIB.iter().enumerate() {
                        if distance > mib << 20 {
                            stats.ofs_farther_than[k] += 1;
                        }
                    }
                    let base = index
                        .binary_search_by_key(&base_offset, |&(_, o)| o)
                        .map_err(|_| {
                            bad(format!("OFS delta at {offset}: no entry at {base_offset}"))
                        })?;
                    Some(base)
                }
                7 => {
                    let id: [u8; 20] = header[at..at + 20].try_into().expect("20 bytes");
                    at += 20;
                    stats.ref_deltas += 1;
                    Some(*by_id.get(&id).ok_or_else(|| {
                        bad(format!("REF delta at {offset}: base not in the pack"))
                    })?)
                }
                _ => None,
            };
        if base.is_some() {
            // The result size is the second varint of the delta data.
            let mut state = InflateState::new_boxed(DataFormat::Zlib);
            let result = inflate(&mut state, &header[at..], &mut inflated, MZFlush::None);
            let mut pos = 0;
            let data = &inflated[..result.bytes_written];
            size = varint(data, &mut pos)
                .and_then(|_| varint(data, &mut pos))
                .ok_or_else(|| bad(format!("cannot read the delta header at {offset}")))?;
        }
        let d = base.map_or(0, |b| depth.get(b).map_or(0, |d| d + 1));
        stats.max_depth = stats.max_depth.max(d);
        depth.push(d);
        stats.inflated_bytes += size;
        entries.push(Entry { size, base });
    }
    for (k, mib) in CACHE_MIB.iter().enumerate() {
        stats.lru_hits[k] = lru_hits(&entries, mib << 20);
    }
    Ok(stats)
}

/// Deltas whose base is in an LRU cache of `capacity` bytes of inflated objects, in one pass in pack order.
fn lru_hits(entries: &[Entry], capacity: u64) -> u64 {
    let mut by_age: BTreeMap<u64, usize> = BTreeMap::new();
    let mut cached: HashMap<usize, u64> = HashMap::new();
    let (mut used, mut hits) = (0u64, 0u64);
    for (tick, (i, entry)) in (0u64..).zip(entries.iter().enumerate()) {
        let tick = tick * 2;
        if let Some(base) = entry.base {
            if let Some(age) = cached.get_mut(&base) {
                hits += 1;
                by_age.remove(age);
                *age = tick;
                by_age.insert(tick, base);
            }
        }
        if entry.size > capacity {
            continue;
        }
        used += entry.size;
        cached.insert(i, tick + 1);
        by_age.insert(tick + 1, i);
        while used > capacity {
            let (_, oldest) = by_age.pop_first().expect("the cache holds what it counts");
            cached.remove(&oldest);
            used -= entries[oldest].size;
        }
    }
    hits
}

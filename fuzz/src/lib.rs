//! The bodies of the fuzz targets: each feeds arbitrary bytes to one parser of hostile input and checks what must
//! hold whatever the bytes (no panic, bounded output, invariants). `fuzz_targets/<name>.rs` runs `<name>` under
//! libFuzzer (`make fuzz`); `tests/fuzz_seeds.rs` runs every body over its seed corpus (`corpus/<name>/`) on
//! stable, so CI exercises them.

use mirror_git_to_s3::git::idx::lookup::{Fanout, FANOUT_END};
use mirror_git_to_s3::git::idx::{self, IdxEntry, IdxError};
use mirror_git_to_s3::git::oid::ObjectId;
use mirror_git_to_s3::git::pack::PackParser;
use mirror_git_to_s3::git::pktline::{self, Decoder, Packet};
use mirror_git_to_s3::git::resolve::{
    self, ResolveError, ResolveLimits, ResolveOptions, ResolveStats,
};
use mirror_git_to_s3::git::scan::Scanner;
use mirror_git_to_s3::git::upload_pack::{self, ResponseDecoder};
use mirror_git_to_s3::git::{delta, layout, refs};
use mirror_git_to_s3::lambda::{parse_event, ParsedEvent};
use mirror_git_to_s3::upstream::{parse_http_date, parse_retry_after, redact_str};
use sha1::{Digest, Sha1};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The names of the targets, as `fuzz_targets/` and `corpus/` name them.
pub const TARGETS: [&str; 13] = [
    "pktline",
    "advertisement",
    "response",
    "pack",
    "delta",
    "layout",
    "ref_name",
    "redact",
    "resolve",
    "idx",
    "packed_refs",
    "lambda_event",
    "retry_after",
];

/// Runs target `name` on `data`; `false` if there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    let body: fn(&[u8]) = match name {
        "pktline" => pktline,
        "advertisement" => advertisement,
        "response" => response,
        "pack" => pack,
        "delta" => delta,
        "layout" => layout,
        "ref_name" => ref_name,
        "redact" => redact,
        "resolve" => resolve,
        "idx" => idx,
        "packed_refs" => packed_refs,
        "lambda_event" => lambda_event,
        "retry_after" => retry_after,
        _ => return false,
    };
    body(data);
    true
}

/// The input cut in pieces whose sizes the first byte chooses, as a network would deliver it.
fn pieces(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let (size, rest) = match data.split_first() {
        Some((&first, rest)) => (usize::from(first % 64) + 1, rest),
        None => (1, data),
    };
    rest.chunks(size)
}

/// pkt-line framing fed in pieces, and side-band demultiplexing of every data packet.
pub fn pktline(data: &[u8]) {
    let mut decoder = Decoder::new();
    for piece in pieces(data) {
        decoder.push(piece);
        while let Ok(Some(packet)) = decoder.next_packet() {
            if let Packet::Data(payload) = packet {
                assert!(
                    payload.len() <= 65516,
                    "a packet longer than pkt-line allows"
                );
                let _ = pktline::demux(payload);
            }
        }
    }
}

/// The ref advertisement parser: every ref it keeps has a name git could store.
pub fn advertisement(data: &[u8]) {
    if let Ok(adv) = upload_pack::parse_advertisement(data) {
        for r in &adv.refs {
            assert!(refs::is_valid_name(r.name.as_bytes()), "{:?}", r.name);
        }
        if let Some(head) = &adv.head_symref {
            assert!(refs::is_valid_name(head.as_bytes()), "{head:?}");
        }
    }
}

/// The upload-pack response decoder fed in pieces; pack data never exceeds the input.
pub fn response(data: &[u8]) {
    let mut decoder = ResponseDecoder::new();
    let mut pack_bytes = 0;
    for piece in pieces(data) {
        decoder.push(piece);
        loop {
            match decoder.next_event() {
                Ok(Some(upload_pack::ResponseEvent::PackData(d))) => pack_bytes += d.len(),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
    let _ = decoder.finish();
    assert!(pack_bytes <= data.len());
}

/// Pack pass 1 fed in pieces: entries lie inside the pack, in order.
pub fn pack(data: &[u8]) {
    let mut parser = PackParser::new();
    for piece in pieces(data) {
        if parser.feed(piece).is_err() {
            return;
        }
    }
    if let Ok(parsed) = parser.finish() {
        assert!(parsed.pack_len <= data.len() as u64);
        let offsets = || parsed.entries.iter().map(|e| e.offset());
        assert!(offsets().zip(offsets().skip(1)).all(|(a, b)| a < b));
    }
}

/// Delta application: the first two bytes give the base's length, the base follows, then the delta. A result
/// is exactly the size the delta declares and never larger than what base and delta can make.
pub fn delta(data: &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let base_len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    let (base, instructions) = rest.split_at(base_len);
    if let Ok(result) = delta::apply(base, instructions) {
        assert!(result.len() <= base.len().saturating_mul(instructions.len()) + instructions.len());
    }
}

/// The parsers of what an earlier run (or anyone) left in the store: `info/refs` and `objects/info/packs`;
/// what parses renders back to what parses the same.
pub fn layout(data: &[u8]) {
    if let Ok(refs) = layout::parse_info_refs(data) {
        let rendered = layout::render_info_refs(&refs);
        assert_eq!(layout::parse_info_refs(&rendered).ok(), Some(refs));
    }
    if let Ok(packs) = layout::parse_packs(data) {
        let rendered = layout::render_packs(&packs);
        assert_eq!(layout::parse_packs(&rendered).ok(), Some(packs));
    }
}

/// Ref names: a valid name is one git's rules allow; checking never panics.
pub fn ref_name(data: &[u8]) {
    if refs::is_valid_name(data) {
        let name = std::str::from_utf8(data).expect("valid names are UTF-8");
        assert!(name.starts_with("refs/") && !name.contains("..") && !name.contains("@{"));
    }
}

/// URL redaction: a password after `:` in the user info, any query value but `service` and any fragment never
/// survive, for text that parses as a URL or not.
pub fn redact(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = redact_str(text);
    for secret in ["SECRET-pw", "SECRET-q", "SECRET-f"] {
        let planted = format!("https://user:{secret}@h/r?token={secret}#{secret}{text}");
        assert!(!redact_str(&planted).contains(secret), "{planted:?}");
    }
}

/// Delta resolution over a whole pack in memory, with small limits. The first byte chooses the limits and the
/// memory budget, the rest is a pack without its trailer (the SHA-1 is appended here, so that mutations reach
/// the entries instead of failing the checksum). Resolution ends with ids for every entry or a typed error,
/// within the limits: no object bigger than allowed, no more work, no more cache or retained bytes.
pub fn resolve(data: &[u8]) {
    let _ = resolve_outcome(data);
}

/// What [`resolve`] does, with its outcome: `None` when the first pass refused the pack.
pub fn resolve_outcome(data: &[u8]) -> Option<Result<ResolveStats, ResolveError>> {
    let (&choice, body) = data.split_first()?;
    let pick = |shift: u32, values: &[u64]| values[usize::from(choice >> shift) % values.len()];
    let limits = ResolveLimits {
        max_object_bytes: pick(5, &[300, 1 << 20]),
        max_work_bytes: pick(6, &[2000, 4 << 20]),
    };
    let options = ResolveOptions {
        cache_bytes: pick(0, &[0, 64, 4096, 1 << 20]),
        retain_bytes: pick(2, &[0, 4096]),
        big_object_bytes: pick(3, &[16, 256, 1 << 20, u64::MAX]),
        progress: None,
        limits,
    };
    let mut pack = body.to_vec();
    pack.extend_from_slice(&Sha1::digest(body));
    let mut parser = PackParser::with_scanner(Scanner::collecting_links(4096).with_lfs_pointers())
        .max_object_bytes(limits.max_object_bytes);
    parser.feed(&pack).ok()?;
    let mut parsed = parser.finish().ok()?;
    let source = bytes::Bytes::from(pack);
    let result = runtime().block_on(resolve::resolve_and_scan(
        &mut parsed.entries,
        &source,
        &options,
        &mut parsed.scanner,
    ));
    if let Ok(stats) = &result {
        assert!(stats.work_bytes <= limits.max_work_bytes, "{stats:?}");
        assert!(stats.peak_cache_bytes <= options.cache_bytes, "{stats:?}");
        assert!(
            stats.peak_retained_bytes <= options.retain_bytes,
            "{stats:?}"
        );
        assert_eq!(stats.kinds.len(), parsed.entries.len());
        for entry in parsed.entries.iter() {
            assert!(entry.oid().is_some(), "{entry:?}");
            assert!(entry.result_size() <= limits.max_object_bytes, "{entry:?}");
        }
    }
    Some(result)
}

/// The runtime the async resolver runs on (one for the whole process).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

/// `.idx` files: lookup in arbitrary bytes taken for an index (it finds what a linear search of a sorted slice
/// finds, and nothing outside what it was given), and the writer → lookup round trip over entries made of the
/// same bytes (32 each: id, CRC-32, offset): the written index is the size its entries make, holds the pack's
/// checksum and its own SHA-1, and every id written is found, others not.
pub fn idx(data: &[u8]) {
    lookup_in(data, &ids_in(data));
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let mut objects: Vec<IdxEntry> = rest
        .chunks_exact(32)
        .map(|chunk| IdxEntry {
            oid: ObjectId(chunk[..20].try_into().expect("20 bytes")),
            crc32: u32::from_le_bytes(chunk[20..24].try_into().expect("4 bytes")),
            offset: u64::from_le_bytes(chunk[24..].try_into().expect("8 bytes")),
        })
        .collect();
    let limit = [idx::DEFAULT_OFFSET32_LIMIT, 0, 1 << 20][usize::from(choice) % 3];
    let checksum = ObjectId([choice; 20]);
    let mut ids: Vec<ObjectId> = objects.iter().map(|o| o.oid).collect();
    ids.sort_unstable();
    let duplicated = ids.windows(2).any(|w| w[0] == w[1]);
    let written = idx::write_idx_v2_with_limit(&mut objects, &checksum, limit);
    let index = match written {
        Err(IdxError::DuplicateObject { .. }) if duplicated => return,
        Err(e) => panic!("{e} for {} objects", objects.len()),
        Ok(index) => {
            assert!(!duplicated, "an index with an id twice");
            index
        }
    };
    let large = objects
        .iter()
        .filter(|o| o.offset >> 31 != 0 || o.offset > limit)
        .count();
    assert_eq!(index.len(), 8 + 1024 + objects.len() * 28 + large * 8 + 40);
    let (body, digest) = index.split_at(index.len() - 20);
    assert_eq!(digest, &Sha1::digest(body)[..]);
    assert_eq!(&body[body.len() - 20..], &checksum.0);
    let fanout = Fanout::parse(&index).expect("a written index parses");
    assert_eq!(fanout.objects() as usize, objects.len());
    let found = lookup_in(&index, &ids);
    assert!(found.iter().all(|&f| f), "a written id not found");
    // Ids next to the written ones, absent unless written too.
    let near: Vec<ObjectId> = ids
        .iter()
        .map(|id| {
            let mut near = *id;
            near.0[19] ^= choice | 1;
            near
        })
        .collect();
    let mut sorted_near = near.clone();
    sorted_near.sort_unstable();
    let found = lookup_in(&index, &sorted_near);
    for (id, found) in sorted_near.iter().zip(found) {
        assert_eq!(found, ids.binary_search(id).is_ok(), "{id}");
    }
}

/// The 20-byte pieces of `data` taken for ids, sorted.
fn ids_in(data: &[u8]) -> Vec<ObjectId> {
    let mut ids: Vec<ObjectId> = data
        .chunks_exact(20)
        .map(|c| ObjectId(c.try_into().expect("20 bytes")))
        .collect();
    ids.sort_unstable();
    ids
}

/// Looks up `ids` (sorted) in `index`, the whole file in memory, as the mirror does with ranged reads; whether
/// each was found. Checks the lookup against a linear search wherever the index's slice is sorted.
fn lookup_in(index: &[u8], ids: &[ObjectId]) -> Vec<bool> {
    let Ok(fanout) = Fanout::parse(index) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (gap, max_read) in [(0, 0), (4096, 1 << 20)] {
        let reads = fanout.plan_reads(ids, gap, max_read);
        assert!(
            reads.windows(2).all(|w| w[0].end <= w[1].start),
            "{reads:?}"
        );
        found = ids
            .iter()
            .map(|id| {
                let hits: Vec<bool> = reads
                    .iter()
                    .filter_map(|read| {
                        let table = read_at(index, read.start, read.end);
                        fanout.find_in(read, table, id)
                    })
                    .collect();
                let found = hits.contains(&true);
                if let Some(expected) = linear_search(index, id) {
                    assert!(!expected || !hits.is_empty(), "no read covers {id}");
                    assert_eq!(found, expected, "{id}");
                }
                found
            })
            .collect();
    }
    found
}

/// The bytes `start..end` of `file`, shorter if the file ends first (a short read, which lookups must refuse).
fn read_at(file: &[u8], start: u64, end: u64) -> &[u8] {
    let len = file.len() as u64;
    &file[start.min(len) as usize..end.min(len) as usize]
}

/// Whether `id` is in the slice of the id table the fan-out gives its first byte, when that slice is inside
/// `index` and sorted (else a binary search may rightly miss it).
fn linear_search(index: &[u8], id: &ObjectId) -> Option<bool> {
    let start = id.0[0]
        .checked_sub(1)
        .map_or(0, |before| fanout_count(index, before));
    let end = fanout_count(index, id.0[0]);
    let slice = index.get(
        usize::try_from(FANOUT_END + u64::from(start) * 20).ok()?
            ..usize::try_from(FANOUT_END + u64::from(end) * 20).ok()?,
    )?;
    let ids: Vec<&[u8]> = slice.chunks_exact(20).collect();
    ids.windows(2)
        .all(|w| w[0] <= w[1])
        .then(|| ids.contains(&&id.0[..]))
}

/// Entry `first` of the fan-out table of `index` (which [`Fanout::parse`] accepted).
fn fanout_count(index: &[u8], first: u8) -> u32 {
    let at = 8 + 4 * usize::from(first);
    u32::from_be_bytes(index[at..at + 4].try_into().expect("4 bytes"))
}

/// `packed-refs`, which the mirror only writes: the refs are read leniently from lines shaped like that file's
/// (`<hex id> <name>`, `^<hex id>` for the peeled id of the ref above; ids that are not hex are made from their
/// bytes), and those the mirror could publish (names git can store, the first of each name) are written. What is
/// written follows git's rules (its header, `<id> <name>` lines sorted by name, `^<id>` only after a ref), says
/// what `info/refs` says for the same refs, and a file already written that way is written back byte for byte.
pub fn packed_refs(data: &[u8]) {
    let mut refs: Vec<refs::Ref> = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        if line.starts_with(b"#") {
            continue;
        }
        if let Some(peeled) = line.strip_prefix(b"^") {
            if let Some(last) = refs.last_mut() {
                last.peeled.get_or_insert(lenient_id(peeled));
            }
            continue;
        }
        let (id, name) = match line.iter().position(|&b| b == b' ') {
            Some(space) => (&line[..space], &line[space + 1..]),
            None => (&line[..0], line),
        };
        let known = refs.iter().any(|r| r.name.as_bytes() == name);
        if let (true, false, Ok(name)) =
            (refs::is_valid_name(name), known, std::str::from_utf8(name))
        {
            refs.push(refs::Ref {
                name: name.to_owned(),
                oid: lenient_id(id),
                peeled: None,
            });
        }
    }
    let given = refs.clone();
    layout::sort_refs(&mut refs);
    let written = layout::render_packed_refs(&refs);
    let text = std::str::from_utf8(&written).expect("packed-refs is UTF-8");
    let mut lines = text.split_terminator('\n');
    assert_eq!(
        lines.next(),
        Some("# pack-refs with: peeled fully-peeled sorted ")
    );
    let mut as_info_refs = Vec::new();
    let mut last_name: Option<&str> = None;
    let mut peelable = false;
    for line in lines {
        if let Some(peeled) = line.strip_prefix('^') {
            assert!(peelable, "a peeled line not after a ref: {text:?}");
            assert!(ObjectId::from_hex(peeled.as_bytes()).is_ok(), "{line:?}");
            as_info_refs.push(format!(
                "{peeled}\t{}^{{}}",
                last_name.expect("a ref above")
            ));
            peelable = false;
            continue;
        }
        let (id, name) = line.split_once(' ').expect("<id> <name>");
        assert!(ObjectId::from_hex(id.as_bytes()).is_ok(), "{line:?}");
        assert!(refs::is_valid_name(name.as_bytes()), "{line:?}");
        assert!(
            last_name.is_none_or(|last| last.as_bytes() < name.as_bytes()),
            "not sorted: {text:?}"
        );
        as_info_refs.push(format!("{id}\t{name}"));
        last_name = Some(name);
        peelable = true;
    }
    let as_info_refs = as_info_refs.join("\n");
    assert_eq!(
        layout::parse_info_refs(as_info_refs.as_bytes()).as_ref(),
        Ok(&refs)
    );
    assert_eq!(
        as_info_refs.into_bytes(),
        layout::render_info_refs(&refs).trim_ascii_end()
    );
    // Input in git's own form: its header, then the lines of sorted refs with lowercase ids, nothing else.
    let line_count = |text: &[u8]| text.iter().filter(|&&b| b == b'\n').count();
    let canonical = given == refs
        && data.starts_with(b"# pack-refs with: peeled fully-peeled sorted \n")
        && data.ends_with(b"\n")
        && line_count(data) == line_count(&written)
        && given.iter().all(|r| has_lines_of(data, r));
    if canonical {
        assert_eq!(
            written, data,
            "a packed-refs in git's form written back otherwise"
        );
    }
}

/// The id a lenient `packed-refs` line gives: its hex, else its bytes repeated (zeros if none).
fn lenient_id(text: &[u8]) -> ObjectId {
    ObjectId::from_hex(text).unwrap_or_else(|_| {
        let mut id = [0; 20];
        for (byte, &b) in id.iter_mut().zip(text.iter().cycle()) {
            *byte = b;
        }
        ObjectId(id)
    })
}

/// Whether `data` has the line `<hex> <name>` of `r`, and its `^<hex>` line after it.
fn has_lines_of(data: &[u8], r: &refs::Ref) -> bool {
    let mut line = format!("\n{} {}\n", r.oid, r.name);
    if let Some(peeled) = r.peeled {
        line.push_str(&format!("^{peeled}\n"));
    }
    data.windows(line.len()).any(|w| w == line.as_bytes())
}

/// The Lambda event parser on arbitrary JSON: a parsed event or an error, never a panic, and every error
/// message bounded whatever the size of the input.
pub fn lambda_event(data: &[u8]) {
    let Ok(value) = serde_json::from_slice(data) else {
        return;
    };
    const MAX_ERROR: usize = 4096;
    match parse_event(value) {
        Ok(ParsedEvent::Sqs(items)) => {
            for item in items {
                if let Err(e) = item.request {
                    assert!(e.to_string().len() <= MAX_ERROR, "{e}");
                }
            }
        }
        Ok(ParsedEvent::Requests { requests, .. }) => {
            for request in requests {
                assert_eq!(request.mappings.len(), request.token_secrets.len());
            }
        }
        Ok(ParsedEvent::Scheduled) => {}
        Err(e) => assert!(
            e.to_string().len() <= MAX_ERROR,
            "{} bytes: {e}",
            e.to_string().len()
        ),
    }
}

/// `Retry-After` values: seconds or an HTTP date, whatever the bytes; a date is within years 0 to 9999 and
/// its wait is counted from the time given.
pub fn retry_after(data: &[u8]) {
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let wait = parse_retry_after(data, now);
    if let Some(date) = parse_http_date(data, now) {
        let year_0 = UNIX_EPOCH - Duration::from_secs(62_167_219_200);
        let year_10000 = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        assert!(year_0 <= date && date < year_10000, "{date:?}");
        assert_eq!(
            wait,
            Some(date.duration_since(now).unwrap_or(Duration::ZERO))
        );
    }
    let _ = parse_http_date(data, SystemTime::UNIX_EPOCH);
}

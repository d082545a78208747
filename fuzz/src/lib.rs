//! The bodies of the fuzz targets: each feeds arbitrary bytes to one parser of hostile input and checks what must
//! hold whatever the bytes (no panic, bounded output, invariants). `fuzz_targets/<name>.rs` runs `<name>` under
//! libFuzzer (`make fuzz`); `tests/fuzz_seeds.rs` runs every body over its seed corpus (`corpus/<name>/`) on
//! stable, so CI exercises them.

use mirror_git_to_s3::git::pack::PackParser;
use mirror_git_to_s3::git::pktline::{self, Decoder, Packet};
use mirror_git_to_s3::git::upload_pack::{self, ResponseDecoder};
use mirror_git_to_s3::git::{delta, layout, refs};
use mirror_git_to_s3::upstream::redact_str;

/// The names of the targets, as `fuzz_targets/` and `corpus/` name them.
pub const TARGETS: [&str; 8] = [
    "pktline",
    "advertisement",
    "response",
    "pack",
    "delta",
    "layout",
    "ref_name",
    "redact",
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
        assert!(parsed
            .entries
            .windows(2)
            .all(|pair| pair[0].offset < pair[1].offset));
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

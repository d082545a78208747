//! The fetch side of git's smart HTTP protocol (v0/v1, stateless RPC), without I/O.
//!
//! A fetch is two HTTP exchanges: `GET info/refs?service=git-upload-pack` returns the ref advertisement
//! ([`parse_advertisement`]); `POST git-upload-pack` sends the wants and haves ([`build_upload_request`], with
//! capabilities from [`choose_capabilities`]) and streams back acknowledgements followed by the pack in side-band
//! packets ([`ResponseDecoder`]). Everything here works on bytes handed in by the caller, so it is tested without
//! a network and bounded by what it is given.

use crate::oid::ObjectId;
use crate::pktline::{self, Band, Decoder, Packet, PktLineError};
use bytes::Bytes;
use std::collections::HashSet;

/// Longest remote text (in characters) kept in an error message.
const MAX_MESSAGE_CHARS: usize = 500;

/// Errors of the upload-pack conversation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Broken pkt-line framing or side-band data.
    #[error(transparent)]
    PktLine(#[from] PktLineError),
    /// The remote reported an error (`ERR` line or side-band 3); the text is made printable.
    #[error("remote error: {0}")]
    Remote(String),
    /// The server answered with a protocol v2 capability advertisement.
    #[error("protocol v2 advertisement not supported here (the server answered `version 2`)")]
    ProtocolV2,
    /// The advertisement has `shallow` lines: the served repository lacks history, so it cannot be mirrored.
    #[error("the remote repository is shallow; mirroring a shallow repository is not supported")]
    ShallowRemote,
    /// A ref name that git would not accept (or outside `refs/`), made printable.
    #[error("ref advertisement: invalid ref name \"{0}\"")]
    InvalidRefName(String),
    /// The same ref appeared twice in the advertisement.
    #[error("ref advertisement: ref \"{0}\" advertised twice")]
    DuplicateRef(String),
    /// Any other malformed advertisement line; `packet` counts pkt-lines from 1.
    #[error("ref advertisement, packet {packet}: {reason}")]
    Advertisement {
        /// Position of the offending pkt-line in the body.
        packet: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The repository uses another hash than SHA-1.
    #[error("unsupported object format {0:?}: only sha1 repositories can be mirrored")]
    UnsupportedObjectFormat(String),
    /// The server offers no side band, which this client requires.
    #[error("the server offers neither side-band-64k nor side-band")]
    NoSideBand,
    /// A capability that is empty or contains spaces or control characters.
    #[error("invalid capability {0:?}")]
    InvalidCapability(String),
    /// An upload request without any `want`.
    #[error("an upload request needs at least one want")]
    NoWants,
    /// The upload-pack response does not follow the protocol.
    #[error("upload-pack response: {0}")]
    Response(String),
    /// The stream ended early.
    #[error("truncated {0}")]
    Truncated(String),
}

/// One ref from the advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisedRef {
    /// Full name, always starting with `refs/`.
    pub name: String,
    /// The object the ref points to.
    pub oid: ObjectId,
    /// For annotated tags, the object the tag finally points to (from the `^{}` line).
    pub peeled: Option<ObjectId>,
}

/// A parsed v0/v1 ref advertisement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advertisement {
    /// What `HEAD` points to, if the server advertised it (absent for an unborn or hidden `HEAD`).
    pub head: Option<ObjectId>,
    /// The branch `HEAD` names, from the `symref=HEAD:<ref>` capability.
    pub head_symref: Option<String>,
    /// Every advertised ref except `HEAD`, in server order.
    pub refs: Vec<AdvertisedRef>,
    /// The server's capabilities, in server order (`name` or `name=value`).
    pub capabilities: Vec<String>,
}

impl Advertisement {
    /// Whether a capability with this name (the part before any `=`) was advertised.
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities
            .iter()
            .any(|cap| cap.split_once('=').map_or(cap.as_str(), |(key, _)| key) == name)
    }

    /// The value of the first `name=value` capability, e.g. `capability_value("agent")`.
    pub fn capability_value(&self, name: &str) -> Option<&str> {
        self.capabilities
            .iter()
            .find_map(|cap| cap.strip_prefix(name)?.strip_prefix('='))
    }
}

/// Parses the body of `GET info/refs?service=git-upload-pack`.
///
/// Accepted form: an optional `# service=git-upload-pack` packet followed by any header packets up to a flush
/// (git's HTTP server always sends it; it is optional so that raw `upload-pack --advertise-refs` output parses
/// too, and the caller checks the content type), an optional `version 1` packet, then ref lines ending with a
/// flush. Refs must be valid git ref names under `refs/`: any other name rejects the whole advertisement, as
/// no git server advertises one. `shallow` lines are rejected ([`ProtocolError::ShallowRemote`]), as is a v2
/// advertisement ([`ProtocolError::ProtocolV2`]). Runs in time linear in the body size.
pub fn parse_advertisement(body: &[u8]) -> Result<Advertisement, ProtocolError> {
    let mut packets = AdvertisementPackets::new(body);
    let mut line = packets.next_data()?;
    let service = line
        .as_deref()
        .and_then(|line| strip_lf(line).strip_prefix(b"# service="));
    if let Some(service) = service {
        if service != b"git-upload-pack" {
            let reason = format!(
                "advertisement for service \"{}\", not git-upload-pack",
                printable(service)
            );
            return Err(packets.error(&reason));
        }
        while packets.next_data()?.is_some() {}
        line = packets.next_data()?;
    }
    match line.as_deref().map(strip_lf) {
        Some(b"version 2") => return Err(ProtocolError::ProtocolV2),
        Some(b"version 1") => line = packets.next_data()?,
        _ => {}
    }

    let mut advertisement = Advertisement::default();
    let mut names = HashSet::new();
    let mut empty_repository = false;
    let mut first = true;
    while let Some(raw) = line {
        let mut text = strip_lf(&raw);
        if first {
            if let Some((refline, capabilities)) = split_once_byte(text, 0) {
                text = refline;
                advertisement.capabilities = String::from_utf8_lossy(capabilities)
                    .split(' ')
                    .filter(|cap| !cap.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
        }
        if text.starts_with(b"shallow ") {
            return Err(ProtocolError::ShallowRemote);
        }
        let (oid, name) = split_ref_line(text).ok_or_else(|| {
            packets.error(&format!(
                "expected \"<object id> <ref name>\", got \"{}\"",
                printable(text)
            ))
        })?;
        if empty_repository {
            return Err(packets.error("ref after the empty-repository line"));
        }
        if first && name == b"capabilities^{}" {
            if !oid.is_zero() {
                return Err(packets.error("capabilities^{} line with a non-zero object id"));
            }
            empty_repository = true;
        } else if name == b"HEAD" {
            if advertisement.head.replace(oid).is_some() {
                return Err(ProtocolError::DuplicateRef("HEAD".into()));
            }
        } else if let Some(tag) = name.strip_suffix(b"^{}") {
            let last = advertisement
                .refs
                .last_mut()
                .filter(|last| last.name.as_bytes() == tag && last.peeled.is_none())
                .ok_or_else(|| {
                    packets.error(&format!(
                        "peeled line for \"{}\" does not follow that ref",
                        printable(tag)
                    ))
                })?;
            last.peeled = Some(oid);
        } else {
            let name = valid_ref_name(name)?;
            if !names.insert(name.clone()) {
                return Err(ProtocolError::DuplicateRef(name));
            }
            advertisement.refs.push(AdvertisedRef {
                name,
                oid,
                peeled: None,
            });
        }
        first = false;
        line = packets.next_data()?;
    }
    if !packets.decoder.is_empty() {
        return Err(packets.error("data after the final flush"));
    }

    let symref = advertisement
        .capabilities
        .iter()
        .find_map(|cap| cap.strip_prefix("symref=HEAD:"));
    advertisement.head_symref = symref
        .map(|target| valid_ref_name(target.as_bytes()))
        .transpose()?;
    Ok(advertisement)
}

/// The pkt-lines of an advertisement body, counted for error messages.
struct AdvertisementPackets {
    decoder: Decoder,
    count: usize,
}

impl AdvertisementPackets {
    fn new(body: &[u8]) -> Self {
        let mut decoder = Decoder::new();
        decoder.push(body);
        Self { decoder, count: 0 }
    }

    /// The next data packet, `None` at a flush; `ERR` lines become [`ProtocolError::Remote`].
    fn next_data(&mut self) -> Result<Option<Bytes>, ProtocolError> {
        let packet = self.decoder.next_packet()?.ok_or_else(|| {
            ProtocolError::Truncated("ref advertisement: it ends without a flush packet".into())
        })?;
        self.count += 1;
        match packet {
            Packet::Flush => Ok(None),
            Packet::Data(data) => match data.strip_prefix(b"ERR ") {
                Some(message) => Err(ProtocolError::Remote(printable(message))),
                None => Ok(Some(data)),
            },
            Packet::Delimiter | Packet::ResponseEnd => {
                Err(self.error("unexpected protocol v2 special packet"))
            }
        }
    }

    fn error(&self, reason: &str) -> ProtocolError {
        ProtocolError::Advertisement {
            packet: self.count,
            reason: reason.to_owned(),
        }
    }
}

/// Splits `<40 hex> SP <name>`.
fn split_ref_line(line: &[u8]) -> Option<(ObjectId, &[u8])> {
    let (hex, name) = split_once_byte(line, b' ')?;
    Some((ObjectId::from_hex(hex).ok()?, name))
}

fn split_once_byte(bytes: &[u8], separator: u8) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == separator)?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

/// Checks a ref name against git's rules (`git check-ref-format`) and requires it to live under `refs/`.
fn valid_ref_name(name: &[u8]) -> Result<String, ProtocolError> {
    let invalid = || ProtocolError::InvalidRefName(printable(name));
    let name = std::str::from_utf8(name).map_err(|_| invalid())?;
    let bad_char = |c: char| c.is_ascii_control() || " ~^:?*[\\".contains(c);
    let bad_component = |c: &str| c.is_empty() || c.starts_with('.') || c.ends_with(".lock");
    if !name.starts_with("refs/")
        || name.ends_with('.')
        || name.contains("..")
        || name.contains("@{")
        || name.contains(bad_char)
        || name.split('/').any(bad_component)
    {
        return Err(invalid());
    }
    Ok(name.to_owned())
}

fn strip_lf(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

/// Remote text made safe to show: lossy UTF-8, trimmed, control characters escaped, at most
/// [`MAX_MESSAGE_CHARS`] characters.
fn printable(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::new();
    for (count, c) in text.trim().chars().enumerate() {
        if count == MAX_MESSAGE_CHARS {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Picks the capabilities for the upload request: `ofs-delta` and `no-progress` when offered, the best side band
/// (required), and `agent=<agent>`. Never `thin-pack`: mirrored packs must be self-contained.
pub fn choose_capabilities(
    advertised: &Advertisement,
    agent: &str,
) -> Result<Vec<String>, ProtocolError> {
    if let Some(format) = advertised.capability_value("object-format") {
        if format != "sha1" {
            return Err(ProtocolError::UnsupportedObjectFormat(format.to_owned()));
        }
    }
    let side_band = ["side-band-64k", "side-band"]
        .into_iter()
        .find(|band| advertised.has_capability(band))
        .ok_or(ProtocolError::NoSideBand)?;
    let mut capabilities = Vec::new();
    if advertised.has_capability("ofs-delta") {
        capabilities.push("ofs-delta".to_owned());
    }
    capabilities.push(side_band.to_owned());
    if advertised.has_capability("no-progress") {
        capabilities.push("no-progress".to_owned());
    }
    capabilities.push(format!("agent={agent}"));
    Ok(capabilities)
}

/// Builds the body of `POST git-upload-pack`: one `want` per distinct id (first-seen order, the first carrying
/// the capabilities), a flush, one `have` per id, then `done`.
pub fn build_upload_request(
    wants: &[ObjectId],
    haves: &[ObjectId],
    capabilities: &[String],
) -> Result<Vec<u8>, ProtocolError> {
    if let Some(bad) = capabilities
        .iter()
        .find(|cap| cap.is_empty() || !cap.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(ProtocolError::InvalidCapability(bad.clone()));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for want in wants.iter().filter(|want| seen.insert(**want)) {
        let mut line = format!("want {want}");
        if out.is_empty() {
            for capability in capabilities {
                line.push(' ');
                line.push_str(capability);
            }
        }
        line.push('\n');
        pktline::write_data(&mut out, line.as_bytes())?;
    }
    if out.is_empty() {
        return Err(ProtocolError::NoWants);
    }
    out.extend_from_slice(pktline::FLUSH);
    for have in haves {
        pktline::write_data(&mut out, format!("have {have}\n").as_bytes())?;
    }
    pktline::write_data(&mut out, b"done\n")?;
    Ok(out)
}

/// What the upload-pack response carries, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseEvent {
    /// A `NAK` or `ACK <id> ...` line before the pack (without the newline).
    Acknowledgement(String),
    /// A piece of the pack (side band 1).
    PackData(Bytes),
    /// A progress message (side band 2).
    Progress(Bytes),
    /// The flush that ends the response; nothing may follow.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseState {
    Acknowledgements,
    SideBand,
    Ended,
}

/// Incremental decoder of the upload-pack response body (sent with a side-band capability).
///
/// [`push`](ResponseDecoder::push) bytes as they arrive and drain [`next_event`](ResponseDecoder::next_event)
/// until it returns `Ok(None)`; at end of input call [`finish`](ResponseDecoder::finish). Buffering is bounded as
/// for [`Decoder`]. After an error the response is unusable.
#[derive(Debug)]
pub struct ResponseDecoder {
    packets: Decoder,
    state: ResponseState,
}

impl Default for ResponseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseDecoder {
    /// A decoder at the start of a response.
    pub fn new() -> Self {
        Self {
            packets: Decoder::new(),
            state: ResponseState::Acknowledgements,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.packets.push(chunk);
    }

    /// The next event, `Ok(None)` if more bytes are needed first (or the response has ended).
    pub fn next_event(&mut self) -> Result<Option<ResponseEvent>, ProtocolError> {
        if self.state == ResponseState::Ended {
            if self.packets.is_empty() {
                return Ok(None);
            }
            return Err(trailing_data());
        }
        let data = match self.packets.next_packet()? {
            None => return Ok(None),
            Some(Packet::Data(data)) => data,
            Some(Packet::Flush) if self.state == ResponseState::SideBand => {
                self.state = ResponseState::Ended;
                return Ok(Some(ResponseEvent::End));
            }
            Some(Packet::Flush) => return Err(response_error("flush packet before any pack data")),
            Some(Packet::Delimiter | Packet::ResponseEnd) => {
                return Err(response_error("unexpected protocol v2 special packet"))
            }
        };
        if let Some(message) = data.strip_prefix(b"ERR ") {
            return Err(ProtocolError::Remote(printable(message)));
        }
        if self.state == ResponseState::Acknowledgements {
            if data.first().is_some_and(u8::is_ascii_graphic) {
                let line = strip_lf(&data);
                if line == b"NAK" || line.starts_with(b"ACK ") {
                    let line = String::from_utf8_lossy(line).into_owned();
                    return Ok(Some(ResponseEvent::Acknowledgement(line)));
                }
                return Err(response_error(&format!(
                    "unexpected line before pack data: \"{}\"",
                    printable(line)
                )));
            }
            self.state = ResponseState::SideBand;
        }
        match pktline::demux(data)? {
            Band::Data(pack) => Ok(Some(ResponseEvent::PackData(pack))),
            Band::Progress(text) => Ok(Some(ResponseEvent::Progress(text))),
            Band::Error(text) => Err(ProtocolError::Remote(printable(&text))),
        }
    }

    /// Checks, at end of input and after draining [`next_event`](Self::next_event), that the response was
    /// complete: the final flush arrived and nothing followed it.
    pub fn finish(&self) -> Result<(), ProtocolError> {
        let buffered = self.packets.buffered();
        match self.state {
            ResponseState::Ended if buffered == 0 => Ok(()),
            ResponseState::Ended => Err(trailing_data()),
            _ if buffered > 0 => Err(ProtocolError::Truncated(format!(
                "upload-pack response: it stops inside a packet ({buffered} bytes left over)"
            ))),
            ResponseState::Acknowledgements => Err(ProtocolError::Truncated(
                "upload-pack response: it ends before any pack data".into(),
            )),
            ResponseState::SideBand => Err(ProtocolError::Truncated(
                "upload-pack response: it ends without the final flush".into(),
            )),
        }
    }
}

fn response_error(reason: &str) -> ProtocolError {
    ProtocolError::Response(reason.to_owned())
}

fn trailing_data() -> ProtocolError {
    response_error("data after the final flush")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha1::{Digest, Sha1};
    use std::io::Write;
    use std::path::Path;
    use std::process::{Command, Stdio};

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const C: &str = "3333333333333333333333333333333333333333";
    const CAPS: &str = "multi_ack thin-pack side-band side-band-64k ofs-delta shallow no-progress \
                        symref=HEAD:refs/heads/main object-format=sha1 agent=git/2.47.3";

    fn oid(hex: &str) -> ObjectId {
        hex.parse().unwrap()
    }

    /// Encodes each line as a data pkt-line, except the literal "0000", which becomes a flush.
    fn wire(lines: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in lines {
            match *line {
                "0000" => out.extend_from_slice(pktline::FLUSH),
                data => pktline::write_data(&mut out, data.as_bytes()).unwrap(),
            }
        }
        out
    }

    fn service_header() -> Vec<u8> {
        wire(&["# service=git-upload-pack\n", "0000"])
    }

    fn advertise(lines: &[&str]) -> Result<Advertisement, ProtocolError> {
        let mut body = service_header();
        body.extend(wire(lines));
        parse_advertisement(&body)
    }

    fn reference(name: &str, hex: &str, peeled: Option<&str>) -> AdvertisedRef {
        AdvertisedRef {
            name: name.into(),
            oid: oid(hex),
            peeled: peeled.map(oid),
        }
    }

    #[test]
    fn parses_head_symref_and_peeled_tags() {
        let first = format!("{A} HEAD\0{CAPS}\n");
        let main = format!("{A} refs/heads/main\n");
        let tag = format!("{B} refs/tags/v1\n");
        let peeled = format!("{C} refs/tags/v1^{{}}\n");
        let light = format!("{C} refs/tags/light");
        let adv = advertise(&[&first, &main, &tag, &peeled, &light, "0000"]).unwrap();
        assert_eq!(adv.head, Some(oid(A)));
        assert_eq!(adv.head_symref.as_deref(), Some("refs/heads/main"));
        assert_eq!(
            adv.refs,
            vec![
                reference("refs/heads/main", A, None),
                reference("refs/tags/v1", B, Some(C)),
                reference("refs/tags/light", C, None),
            ]
        );
        assert_eq!(adv.capabilities.len(), 10);
        assert!(adv.has_capability("side-band-64k"));
        assert!(adv.has_capability("agent"));
        assert!(!adv.has_capability("side"));
        assert_eq!(adv.capability_value("agent"), Some("git/2.47.3"));
        assert_eq!(adv.capability_value("object-format"), Some("sha1"));
        assert_eq!(adv.capability_value("ofs-delta"), None);
        assert_eq!(adv.capability_value("agen"), None);
    }

    #[test]
    fn service_header_and_version_1_are_optional() {
        let first = format!("{A} refs/heads/main\0side-band\n");
        let expected = advertise(&[&first, "0000"]).unwrap();
        assert_eq!(
            parse_advertisement(&wire(&[&first, "0000"])),
            Ok(expected.clone())
        );
        assert_eq!(
            advertise(&["version 1\n", &first, "0000"]),
            Ok(expected.clone())
        );
        // Git tolerates extra header lines before the header's flush.
        let mut body = wire(&[
            "# service=git-upload-pack\n",
            "extra header\n",
            "0000",
            &first,
            "0000",
        ]);
        assert_eq!(parse_advertisement(&body), Ok(expected));
        body = wire(&["# service=git-receive-pack\n", "0000", &first, "0000"]);
        assert!(matches!(
            parse_advertisement(&body),
            Err(ProtocolError::Advertisement { packet: 1, reason }) if reason.contains("git-receive-pack")
        ));
    }

    #[test]
    fn empty_repository() {
        let first = format!("{} capabilities^{{}}\0{CAPS}\n", ObjectId::ZERO);
        let adv = advertise(&[&first, "0000"]).unwrap();
        assert_eq!(adv.head, None);
        assert!(adv.refs.is_empty());
        assert!(adv.has_capability("ofs-delta"));
        // Without any line at all.
        assert_eq!(advertise(&["0000"]), Ok(Advertisement::default()));
        // Only the first line may be the empty-repository marker, with the zero id, and nothing may follow it.
        let nonzero = format!("{A} capabilities^{{}}\0side-band\n");
        assert!(matches!(
            advertise(&[&nonzero, "0000"]),
            Err(ProtocolError::Advertisement { .. })
        ));
        let after = format!("{A} refs/heads/main\n");
        assert!(matches!(
            advertise(&[&first, &after, "0000"]),
            Err(ProtocolError::Advertisement { .. })
        ));
        let late = format!("{} capabilities^{{}}\n", ObjectId::ZERO);
        assert!(matches!(
            advertise(&[&after, &late, "0000"]),
            Err(ProtocolError::Advertisement { .. })
        ));
    }

    #[test]
    fn advertisement_without_head() {
        let first = format!("{A} refs/heads/main\0side-band-64k symref=HEAD:refs/heads/gone");
        let adv = advertise(&[&first, "0000"]).unwrap();
        assert_eq!(adv.head, None);
        assert_eq!(adv.head_symref.as_deref(), Some("refs/heads/gone"));
        assert_eq!(adv.refs, vec![reference("refs/heads/main", A, None)]);
    }

    #[test]
    fn capabilities_only_on_the_first_line() {
        let first = format!("{A} HEAD\n");
        let second = format!("{A} refs/heads/main\0side-band\n");
        assert_eq!(
            advertise(&[&first, &second, "0000"]),
            Err(ProtocolError::InvalidRefName(
                "refs/heads/main\\u{0}side-band".into()
            ))
        );
    }

    #[test]
    fn ten_thousand_refs() {
        let mut lines = vec![format!("{A} HEAD\0{CAPS}\n")];
        for i in 0..10_000 {
            lines.push(format!("{B} refs/tags/t{i}\n"));
            if i % 2 == 0 {
                lines.push(format!("{C} refs/tags/t{i}^{{}}\n"));
            }
        }
        lines.push("0000".into());
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let adv = advertise(&lines).unwrap();
        assert_eq!(adv.refs.len(), 10_000);
        assert_eq!(adv.refs[9_998], reference("refs/tags/t9998", B, Some(C)));
        assert_eq!(adv.refs[9_999], reference("refs/tags/t9999", B, None));
    }

    #[test]
    fn duplicate_refs() {
        let main = format!("{A} refs/heads/main\n");
        let other = format!("{B} refs/heads/other\n");
        assert_eq!(
            advertise(&[&main, &other, &main, "0000"]),
            Err(ProtocolError::DuplicateRef("refs/heads/main".into()))
        );
        let head = format!("{A} HEAD\n");
        assert_eq!(
            advertise(&[&head, &head, "0000"]),
            Err(ProtocolError::DuplicateRef("HEAD".into()))
        );
    }

    #[test]
    fn bad_peeled_lines() {
        let tag = format!("{A} refs/tags/v1\n");
        let other = format!("{A} refs/tags/v2\n");
        let peeled = format!("{B} refs/tags/v1^{{}}\n");
        let head = format!("{A} HEAD\n");
        let head_peeled = format!("{B} HEAD^{{}}\n");
        for lines in [
            vec![peeled.as_str(), "0000"],
            vec![&tag, &other, &peeled, "0000"],
            vec![&tag, &peeled, &peeled, "0000"],
            vec![&head, &head_peeled, "0000"],
        ] {
            let error = advertise(&lines).unwrap_err();
            assert!(error.to_string().contains("does not follow"), "{error}");
        }
    }

    #[test]
    fn version_2_is_rejected() {
        let body = wire(&[
            "version 2\n",
            "agent=git/2.47.3\n",
            "ls-refs=unborn\n",
            "0000",
        ]);
        assert_eq!(parse_advertisement(&body), Err(ProtocolError::ProtocolV2));
        assert_eq!(
            advertise(&["version 2\n", "0000"]),
            Err(ProtocolError::ProtocolV2)
        );
        assert!(ProtocolError::ProtocolV2
            .to_string()
            .contains("protocol v2 advertisement not supported here"));
    }

    #[test]
    fn shallow_remote_is_rejected() {
        let first = format!("{A} HEAD\0shallow side-band\n");
        let shallow = format!("shallow {B}\n");
        assert_eq!(
            advertise(&[&first, &shallow, "0000"]),
            Err(ProtocolError::ShallowRemote)
        );
        let empty = format!("{} capabilities^{{}}\0side-band\n", ObjectId::ZERO);
        assert_eq!(
            advertise(&[&empty, &shallow, "0000"]),
            Err(ProtocolError::ShallowRemote)
        );
    }

    #[test]
    fn ref_names_are_validated() {
        for good in [
            "refs/heads/a.b",
            "refs/pull/1/head",
            "refs/heads/ünï",
            "refs/heads/a@b",
            "refs/x-y_z+1",
        ] {
            let line = format!("{A} {good}\n");
            assert_eq!(advertise(&[&line, "0000"]).unwrap().refs[0].name, good);
        }
        for bad in [
            "refs/heads/a..b",
            "refs/heads/",
            "refs/heads/x.lock",
            "refs/heads/x.lock/y",
            "refs/heads/.hidden",
            "refs/heads//x",
            "refs/heads/x.",
            "refs/heads/a b",
            "refs/heads/a~1",
            "refs/heads/a:b",
            "refs/heads/a\\b",
            "refs/heads/a*",
            "refs/heads/a@{1}",
            "refs/heads/tab\there",
            "refs/heads/del\x7f",
            "heads/main",
            "refs",
            ".have",
            "FETCH_HEAD",
            "",
        ] {
            let line = format!("{A} {bad}\n");
            let expected = ProtocolError::InvalidRefName(printable(bad.as_bytes()));
            assert_eq!(advertise(&[&line, "0000"]), Err(expected), "{bad:?}");
        }
        let mut body = service_header();
        body.extend(wire(&[&format!("{A} refs/heads/\u{1b}[31m\n")]));
        let error = parse_advertisement(&body).unwrap_err().to_string();
        assert_eq!(
            error,
            "ref advertisement: invalid ref name \"refs/heads/\\u{1b}[31m\""
        );
        let mut line = format!("{A} refs/heads/").into_bytes();
        line.extend_from_slice(b"\xff\n");
        let mut body = service_header();
        pktline::write_data(&mut body, &line).unwrap();
        body.extend_from_slice(pktline::FLUSH);
        assert_eq!(
            parse_advertisement(&body),
            Err(ProtocolError::InvalidRefName("refs/heads/\u{fffd}".into()))
        );
        let symref = format!("{A} refs/heads/main\0side-band symref=HEAD:refs/heads/a..b\n");
        assert_eq!(
            advertise(&[&symref, "0000"]),
            Err(ProtocolError::InvalidRefName("refs/heads/a..b".into()))
        );
    }

    #[test]
    fn malformed_advertisements() {
        let main = format!("{A} refs/heads/main\n");
        // No final flush, or a body cut inside a packet.
        assert!(matches!(
            advertise(&[&main]),
            Err(ProtocolError::Truncated(_))
        ));
        let mut body = service_header();
        body.extend(wire(&[&main]));
        body.truncate(body.len() - 3);
        assert!(matches!(
            parse_advertisement(&body),
            Err(ProtocolError::Truncated(_))
        ));
        assert!(matches!(
            parse_advertisement(b""),
            Err(ProtocolError::Truncated(_))
        ));
        // Data after the final flush.
        assert_eq!(
            advertise(&[&main, "0000", &main]),
            Err(ProtocolError::Advertisement {
                packet: 4,
                reason: "data after the final flush".into()
            })
        );
        // Lines that are not `<oid> <name>`.
        for line in [
            "hello\n",
            "1111 refs/heads/main\n",
            &format!("{A}\trefs/heads/main\n"),
            &format!("{A}\n"),
        ] {
            assert!(
                matches!(
                    advertise(&[line, "0000"]),
                    Err(ProtocolError::Advertisement { packet: 3, .. })
                ),
                "{line:?}"
            );
        }
        let bad_hex = format!("{} refs/heads/main\n", "g".repeat(40));
        assert!(matches!(
            advertise(&[&bad_hex, "0000"]),
            Err(ProtocolError::Advertisement { .. })
        ));
        // Protocol v2 special packets and broken framing.
        let mut body = service_header();
        body.extend_from_slice(b"0001");
        assert!(matches!(
            parse_advertisement(&body),
            Err(ProtocolError::Advertisement { .. })
        ));
        assert_eq!(
            parse_advertisement(b"00zz"),
            Err(ProtocolError::PktLine(PktLineError::BadLengthHeader(
                *b"00zz"
            )))
        );
    }

    #[test]
    fn err_line_in_advertisement() {
        let body = wire(&["ERR access denied: \x1b[1mnope\n"]);
        assert_eq!(
            parse_advertisement(&body),
            Err(ProtocolError::Remote(
                "access denied: \\u{1b}[1mnope".into()
            ))
        );
        assert_eq!(
            advertise(&["ERR repository not exported"]),
            Err(ProtocolError::Remote("repository not exported".into()))
        );
    }

    #[test]
    fn printable_is_bounded_and_escaped() {
        assert_eq!(
            printable(b"  fatal: bad\r\n\tthing \xff\n"),
            "fatal: bad\\r\\n\\tthing \u{fffd}"
        );
        let long = printable(&[b'a'; 10_000]);
        assert_eq!(long.len(), MAX_MESSAGE_CHARS + 3);
        assert!(long.ends_with("a..."));
    }

    fn advertised(capabilities: &str) -> Advertisement {
        Advertisement {
            capabilities: capabilities.split(' ').map(str::to_owned).collect(),
            ..Advertisement::default()
        }
    }

    #[test]
    fn capability_choice() {
        assert_eq!(
            choose_capabilities(&advertised(CAPS), "mirror/1.0").unwrap(),
            [
                "ofs-delta",
                "side-band-64k",
                "no-progress",
                "agent=mirror/1.0"
            ]
        );
        assert_eq!(
            choose_capabilities(&advertised("thin-pack side-band"), "m").unwrap(),
            ["side-band", "agent=m"]
        );
        assert_eq!(
            choose_capabilities(&advertised("ofs-delta thin-pack"), "m"),
            Err(ProtocolError::NoSideBand)
        );
        assert_eq!(
            choose_capabilities(&advertised("side-band-64k object-format=sha256"), "m"),
            Err(ProtocolError::UnsupportedObjectFormat("sha256".into()))
        );
    }

    #[test]
    fn upload_request_bytes() {
        let caps = vec![
            "ofs-delta".to_owned(),
            "side-band-64k".to_owned(),
            "agent=m/1".to_owned(),
        ];
        let request =
            build_upload_request(&[oid(A), oid(B), oid(A), oid(B)], &[oid(C)], &caps).unwrap();
        let expected = wire(&[
            &format!("want {A} ofs-delta side-band-64k agent=m/1\n"),
            &format!("want {B}\n"),
            "0000",
            &format!("have {C}\n"),
            "done\n",
        ]);
        assert_eq!(
            String::from_utf8(request).unwrap(),
            String::from_utf8(expected).unwrap()
        );
        assert_eq!(
            build_upload_request(&[oid(A)], &[], &[]).unwrap(),
            wire(&[&format!("want {A}\n"), "0000", "done\n"])
        );
        assert_eq!(
            build_upload_request(&[], &[oid(C)], &caps),
            Err(ProtocolError::NoWants)
        );
        for bad in ["", "agent=my agent", "a\nb", "tab\t"] {
            assert_eq!(
                build_upload_request(&[oid(A)], &[], &[bad.to_owned()]),
                Err(ProtocolError::InvalidCapability(bad.into()))
            );
        }
        let huge = vec!["x".repeat(70_000)];
        assert_eq!(
            build_upload_request(&[oid(A)], &[], &huge),
            Err(ProtocolError::PktLine(PktLineError::DataTooLong(70_047)))
        );
    }

    /// Decodes `body` fed `chunk` bytes at a time, stopping at the first error.
    fn decode(body: &[u8], chunk: usize) -> (Vec<ResponseEvent>, Result<(), ProtocolError>) {
        let mut decoder = ResponseDecoder::new();
        let mut events = Vec::new();
        for piece in body.chunks(chunk) {
            decoder.push(piece);
            loop {
                match decoder.next_event() {
                    Ok(Some(event)) => events.push(event),
                    Ok(None) => break,
                    Err(error) => return (events, Err(error)),
                }
            }
        }
        let end = decoder.finish();
        (events, end)
    }

    /// Merges consecutive pack pieces so that results fed in different chunk sizes compare equal.
    fn merged(events: Vec<ResponseEvent>) -> Vec<ResponseEvent> {
        let mut out: Vec<ResponseEvent> = Vec::new();
        for event in events {
            match (out.last_mut(), event) {
                (Some(ResponseEvent::PackData(pack)), ResponseEvent::PackData(more)) => {
                    *pack = [pack.as_ref(), more.as_ref()].concat().into();
                }
                (_, event) => out.push(event),
            }
        }
        out
    }

    fn pack_bytes(events: &[ResponseEvent]) -> Vec<u8> {
        events
            .iter()
            .filter_map(|event| match event {
                ResponseEvent::PackData(data) => Some(data.as_ref()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .concat()
    }

    fn synthetic_response() -> Vec<u8> {
        let mut body = wire(&[
            "NAK\n",
            "\x02Counting objects: 1\r",
            "\x01PACK\0\0\0\x02",
            "\x01\0\0\0\0rest",
        ]);
        body.extend_from_slice(pktline::FLUSH);
        body
    }

    #[test]
    fn response_events_at_every_chunk_size() {
        let body = synthetic_response();
        let expected = vec![
            ResponseEvent::Acknowledgement("NAK".into()),
            ResponseEvent::Progress(Bytes::from_static(b"Counting objects: 1\r")),
            ResponseEvent::PackData(Bytes::from_static(b"PACK\0\0\0\x02")),
            ResponseEvent::PackData(Bytes::from_static(b"\0\0\0\0rest")),
            ResponseEvent::End,
        ];
        assert_eq!(decode(&body, body.len()), (expected.clone(), Ok(())));
        for chunk in 1..body.len() {
            let (events, end) = decode(&body, chunk);
            assert_eq!(end, Ok(()), "chunk {chunk}");
            assert_eq!(merged(events), merged(expected.clone()), "chunk {chunk}");
        }
    }

    #[test]
    fn truncated_responses() {
        let body = synthetic_response();
        for cut in 0..body.len() {
            let (events, end) = decode(&body[..cut], 1);
            assert!(
                matches!(end, Err(ProtocolError::Truncated(_))),
                "cut at {cut}: {end:?}"
            );
            assert!(!events.contains(&ResponseEvent::End));
        }
        let (_, end) = decode(b"", 1);
        assert_eq!(
            end,
            Err(ProtocolError::Truncated(
                "upload-pack response: it ends before any pack data".into()
            ))
        );
    }

    #[test]
    fn data_after_end_is_an_error() {
        let mut body = synthetic_response();
        body.extend(wire(&["\x01more"]));
        let (events, end) = decode(&body, body.len());
        assert_eq!(events.last(), Some(&ResponseEvent::End));
        assert_eq!(
            end,
            Err(ProtocolError::Response("data after the final flush".into()))
        );
        // Also when the caller only notices at end of input.
        let mut decoder = ResponseDecoder::new();
        decoder.push(&synthetic_response());
        while decoder.next_event().unwrap() != Some(ResponseEvent::End) {}
        decoder.push(pktline::FLUSH);
        assert_eq!(
            decoder.finish(),
            Err(ProtocolError::Response("data after the final flush".into()))
        );
    }

    #[test]
    fn remote_errors_in_responses() {
        let (events, end) = decode(&wire(&["ERR upload-pack: not our ref 1234\n"]), 1);
        assert!(events.is_empty());
        assert_eq!(
            end,
            Err(ProtocolError::Remote(
                "upload-pack: not our ref 1234".into()
            ))
        );
        // Band 3 after pack data has started, with control characters and surrounding whitespace.
        let body = wire(&["NAK\n", "\x01PACK", "\x03\nfatal: out of memory\x07\n"]);
        let (events, end) = decode(&body, 3);
        assert_eq!(events.len(), 2);
        assert_eq!(
            end,
            Err(ProtocolError::Remote("fatal: out of memory\\u{7}".into()))
        );
        assert_eq!(
            end.unwrap_err().to_string(),
            "remote error: fatal: out of memory\\u{7}"
        );
    }

    #[test]
    fn unexpected_response_packets() {
        let shallow = format!("shallow {A}\n");
        let unshallow = format!("unshallow {A}\n");
        for (lines, expected) in [
            (
                vec![shallow.as_str()],
                ProtocolError::Response(format!(
                    "unexpected line before pack data: \"shallow {A}\""
                )),
            ),
            (
                vec![&unshallow],
                ProtocolError::Response(format!(
                    "unexpected line before pack data: \"unshallow {A}\""
                )),
            ),
            (
                vec!["NAK\n", "0000"],
                ProtocolError::Response("flush packet before any pack data".into()),
            ),
            (
                vec!["NAK\n", "\x05x"],
                ProtocolError::PktLine(PktLineError::UnknownBand(5)),
            ),
            (
                vec!["\x01PACK", "\x00x"],
                ProtocolError::PktLine(PktLineError::UnknownBand(0)),
            ),
            (
                vec!["\x01PACK", "NAK\n"],
                ProtocolError::PktLine(PktLineError::UnknownBand(b'N')),
            ),
            (
                vec!["\x01PACK", ""],
                ProtocolError::PktLine(PktLineError::EmptySideBand),
            ),
            (
                vec![""],
                ProtocolError::PktLine(PktLineError::EmptySideBand),
            ),
        ] {
            assert_eq!(decode(&wire(&lines), 1).1, Err(expected), "{lines:?}");
        }
        let (_, end) = decode(b"0008NAK\n0001", 1);
        assert_eq!(
            end,
            Err(ProtocolError::Response(
                "unexpected protocol v2 special packet".into()
            ))
        );
        let (_, end) = decode(b"0008NAK\n0003", 1);
        assert_eq!(
            end,
            Err(ProtocolError::PktLine(PktLineError::InvalidLength(3)))
        );
    }

    /// Runs real git with a clean configuration; returns whether it succeeded and its stdout.
    fn git(dir: &Path, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> (bool, Vec<u8>) {
        let mut child = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .env_remove("GIT_PROTOCOL")
            .env_remove("GIT_DIR")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let output = child.wait_with_output().unwrap();
        (output.status.success(), output.stdout)
    }

    fn git_ok(dir: &Path, args: &[&str]) -> String {
        let (ok, out) = git(dir, args, b"", &[]);
        assert!(ok, "git {args:?} failed");
        String::from_utf8(out).unwrap().trim().to_owned()
    }

    /// A repository with two commits on `main`, a branch, an annotated and a lightweight tag.
    fn real_repository() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        git_ok(repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("a.txt"), "hello\n").unwrap();
        git_ok(repo, &["add", "a.txt"]);
        git_ok(repo, &["commit", "-q", "-m", "one"]);
        git_ok(repo, &["tag", "-a", "-m", "release", "v1"]);
        git_ok(repo, &["branch", "feature"]);
        std::fs::write(repo.join("b.txt"), "world\n").unwrap();
        git_ok(repo, &["add", "b.txt"]);
        git_ok(repo, &["commit", "-q", "-m", "two"]);
        git_ok(repo, &["tag", "light"]);
        dir
    }

    /// What `git http-backend` serves for `info/refs?service=git-upload-pack`.
    fn real_advertisement(repo: &Path, env: &[(&str, &str)]) -> Vec<u8> {
        let (ok, refs) = git(
            repo,
            &["upload-pack", "--stateless-rpc", "--advertise-refs", "."],
            b"",
            env,
        );
        assert!(ok);
        let mut body = service_header();
        body.extend(refs);
        body
    }

    #[test]
    fn real_git_advertisement() {
        let dir = real_repository();
        let repo = dir.path();
        let adv = parse_advertisement(&real_advertisement(repo, &[])).unwrap();
        let rev = |name: &str| oid(&git_ok(repo, &["rev-parse", name]));
        assert_eq!(adv.head, Some(rev("HEAD")));
        assert_eq!(adv.head_symref.as_deref(), Some("refs/heads/main"));
        assert_eq!(
            adv.refs,
            vec![
                AdvertisedRef {
                    name: "refs/heads/feature".into(),
                    oid: rev("HEAD~1"),
                    peeled: None
                },
                AdvertisedRef {
                    name: "refs/heads/main".into(),
                    oid: rev("HEAD"),
                    peeled: None
                },
                AdvertisedRef {
                    name: "refs/tags/light".into(),
                    oid: rev("HEAD"),
                    peeled: None
                },
                AdvertisedRef {
                    name: "refs/tags/v1".into(),
                    oid: rev("v1"),
                    peeled: Some(rev("HEAD~1"))
                },
            ]
        );
        assert!(adv
            .capability_value("agent")
            .is_some_and(|agent| agent.starts_with("git/")));
        assert_eq!(
            choose_capabilities(&adv, "mirror-test/1").unwrap(),
            [
                "ofs-delta",
                "side-band-64k",
                "no-progress",
                "agent=mirror-test/1"
            ]
        );

        let v2 = real_advertisement(repo, &[("GIT_PROTOCOL", "version=2")]);
        assert_eq!(
            parse_advertisement(&v2[service_header().len()..]),
            Err(ProtocolError::ProtocolV2)
        );
    }

    #[test]
    fn real_git_empty_repository() {
        let dir = tempfile::tempdir().unwrap();
        git_ok(dir.path(), &["init", "-q", "-b", "main"]);
        let adv = parse_advertisement(&real_advertisement(dir.path(), &[])).unwrap();
        assert_eq!(adv.head, None);
        assert!(adv.refs.is_empty());
        assert!(adv.has_capability("side-band-64k"));
    }

    /// Runs `upload-pack --stateless-rpc` on a request and returns the decoded events.
    fn real_fetch(
        repo: &Path,
        request: &[u8],
        chunk: usize,
    ) -> (Vec<ResponseEvent>, Result<(), ProtocolError>) {
        let (_, response) = git(repo, &["upload-pack", "--stateless-rpc", "."], request, &[]);
        decode(&response, chunk)
    }

    fn assert_valid_pack(pack: &[u8], objects: u32) {
        assert!(
            pack.starts_with(b"PACK\0\0\0\x02"),
            "{:?}",
            &pack[..pack.len().min(12)]
        );
        assert_eq!(pack[8..12], objects.to_be_bytes());
        let (content, trailer) = pack.split_at(pack.len() - 20);
        assert_eq!(Sha1::digest(content).as_slice(), trailer);
    }

    #[test]
    fn real_git_fetch() {
        let dir = real_repository();
        let repo = dir.path();
        let adv = parse_advertisement(&real_advertisement(repo, &[])).unwrap();
        let capabilities = choose_capabilities(&adv, "mirror-test/1").unwrap();
        let wants: Vec<ObjectId> = adv.refs.iter().map(|r| r.oid).collect();
        let request = build_upload_request(&wants, &[], &capabilities).unwrap();
        // 2 commits, 2 trees, 2 blobs, 1 tag.
        for chunk in [1, 7, 1 << 16] {
            let (events, end) = real_fetch(repo, &request, chunk);
            assert_eq!(end, Ok(()));
            assert_eq!(
                events.first(),
                Some(&ResponseEvent::Acknowledgement("NAK".into()))
            );
            assert_eq!(events.last(), Some(&ResponseEvent::End));
            assert_valid_pack(&pack_bytes(&events), 7);
        }

        // An incremental fetch: the server acknowledges the common commit and sends only what is new.
        let old = oid(&git_ok(repo, &["rev-parse", "HEAD~1"]));
        let request = build_upload_request(&[adv.head.unwrap()], &[old], &capabilities).unwrap();
        let (events, end) = real_fetch(repo, &request, 5);
        assert_eq!(end, Ok(()));
        assert_eq!(
            events[0],
            ResponseEvent::Acknowledgement(format!("ACK {old}"))
        );
        assert_valid_pack(&pack_bytes(&events), 3);

        // Progress arrives on band 2 when not suppressed.
        let with_progress: Vec<String> = capabilities
            .into_iter()
            .filter(|c| c != "no-progress")
            .collect();
        let request = build_upload_request(&wants, &[], &with_progress).unwrap();
        let (events, end) = real_fetch(repo, &request, 1 << 16);
        assert_eq!(end, Ok(()));
        assert!(events
            .iter()
            .any(|e| matches!(e, ResponseEvent::Progress(_))));
        assert_valid_pack(&pack_bytes(&events), 7);

        // A want the server does not have.
        let request = build_upload_request(&[oid(A)], &[], &with_progress).unwrap();
        let (events, end) = real_fetch(repo, &request, 1);
        assert!(events.is_empty());
        assert_eq!(
            end,
            Err(ProtocolError::Remote(format!(
                "upload-pack: not our ref {A}"
            )))
        );
    }
}

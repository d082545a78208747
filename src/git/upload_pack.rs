//! The fetch side of git's smart HTTP protocol (v0/v1 here, v2 in [`v2`]; stateless RPC), without I/O.
//!
//! A v0 fetch is two HTTP exchanges: `GET info/refs?service=git-upload-pack` returns the ref advertisement
//! ([`parse_advertisement`]); `POST git-upload-pack` sends the wants and haves ([`build_upload_request`], with
//! capabilities from [`choose_capabilities`]) and streams back acknowledgements followed by the pack in side-band
//! packets ([`ResponseDecoder`]). A v2 fetch adds an `ls-refs` exchange in between ([`v2`]); [`build_fetch`] and
//! [`ResponseDecoder::for_protocol`] pick the request and the response format by the advertisement's
//! [`Protocol`]. Everything here works on bytes handed in by the caller, so it is tested without a network and
//! bounded by what it is given.

use crate::git::oid::ObjectId;
use crate::git::pktline::{self, Band, Decoder, Packet, PktLineError};
use crate::git::refs::{self, Ref};
use crate::text::untrusted;
use bytes::Bytes;
use std::collections::HashSet;

pub mod v2;

/// Longest remote text (in characters) kept in an error message.
const MAX_MESSAGE_CHARS: usize = 500;

/// Errors of the upload-pack conversation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Broken pkt-line framing or side-band data.
    #[error(transparent)]
    PktLine(#[from] PktLineError),
    /// The remote reported an error (`ERR` line or side-band 3); the text is made safe to show.
    #[error("remote error: {0}")]
    Remote(String),
    /// The server answered with a protocol v2 capability advertisement.
    #[error("protocol v2 advertisement not supported here (the server answered `version 2`)")]
    ProtocolV2,
    /// The advertisement has `shallow` lines: the served repository lacks history, so it cannot be mirrored.
    #[error("the remote repository is shallow; mirroring a shallow repository is not supported")]
    ShallowRemote,
    /// The response has `shallow` or `unshallow` lines: the pack would lack history (the mirror never asks for
    /// a shallow fetch, so the server or something between answered another request).
    #[error(
        "the source answered with a shallow pack (\"{0}\"), which lacks history; refusing it, nothing was published"
    )]
    ShallowResponse(String),
    /// A ref name that git would not accept (or outside `refs/`), made safe to show.
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
    /// A ref prefix that is empty or holds spaces or control characters, made safe to show.
    #[error("invalid ref prefix \"{0}\"")]
    InvalidRefPrefix(String),
}

/// The protocol version a server answered with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// v0 or v1: the refs come with the capabilities; one request for the pack.
    #[default]
    V0,
    /// v2: capabilities first, then the `ls-refs` and `fetch` commands ([`v2`]).
    V2,
}

/// A parsed v0/v1 ref advertisement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advertisement {
    /// What `HEAD` points to, if the server advertised it (absent for an unborn or hidden `HEAD`).
    pub head: Option<ObjectId>,
    /// The branch `HEAD` names, from the `symref=HEAD:<ref>` capability.
    pub head_symref: Option<String>,
    /// Every advertised ref except `HEAD`, in server order.
    pub refs: Vec<Ref>,
    /// The server's capabilities, in server order (`name` or `name=value`).
    pub capabilities: Vec<String>,
    /// Ref names git could not store ([`crate::git::refs::is_valid_name`]), left out of `refs` as `git fetch`
    /// leaves them out, made safe to show; also an invalid `symref=HEAD:` target.
    pub skipped: Vec<String>,
    /// The protocol the server speaks, which decides how the pack is asked for.
    pub protocol: Protocol,
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
/// flush. A ref whose name git could not store (or outside `refs/`) is left out, with its peeled line, and listed
/// in [`Advertisement::skipped`], as `git fetch` ignores such refs: one bad name does not stop a mirror. `shallow` lines are rejected ([`ProtocolError::ShallowRemote`]), as is a v2
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
                untrusted(service, MAX_MESSAGE_CHARS)
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
    let mut last_skipped: Option<Vec<u8>> = None;
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
                untrusted(text, MAX_MESSAGE_CHARS)
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
        } else if let Some(tag) = name
            .strip_suffix(b"^{}")
            .filter(|tag| last_skipped.as_deref() != Some(tag))
        {
            let last = advertisement
                .refs
                .last_mut()
                .filter(|last| last.name.as_bytes() == tag && last.peeled.is_none())
                .ok_or_else(|| {
                    packets.error(&format!(
                        "peeled line for \"{}\" does not follow that ref",
                        untrusted(tag, MAX_MESSAGE_CHARS)
                    ))
                })?;
            last.peeled = Some(oid);
        } else if name.strip_suffix(b"^{}").is_some() {
            // The peeled line of the ref skipped just before.
        } else {
            match valid_ref_name(name) {
                Ok(name) => {
                    if !names.insert(name.clone()) {
                        return Err(ProtocolError::DuplicateRef(name));
                    }
                    advertisement.refs.push(Ref {
                        name,
                        oid,
                        peeled: None,
                    });
                }
                Err(_) => {
                    advertisement.skipped.push(shown_ref_name(name));
                    last_skipped = Some(name.to_vec());
                }
            }
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
    match symref {
        Some(target) if refs::is_valid_name(target.as_bytes()) => {
            advertisement.head_symref = Some(target.to_owned());
        }
        Some(target) => {
            let shown = format!("symref=HEAD:{}", shown_ref_name(target.as_bytes()));
            advertisement.skipped.push(shown);
        }
        None => {}
    }
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
                Some(message) => Err(ProtocolError::Remote(untrusted(message, MAX_MESSAGE_CHARS))),
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

/// A ref name git can store, as an owned string ([`ProtocolError::InvalidRefName`] otherwise).
fn valid_ref_name(name: &[u8]) -> Result<String, ProtocolError> {
    match std::str::from_utf8(name) {
        Ok(name) if refs::is_valid_name(name.as_bytes()) => Ok(name.to_owned()),
        _ => Err(ProtocolError::InvalidRefName(shown_ref_name(name))),
    }
}

/// A ref name from the server made safe for messages.
fn shown_ref_name(name: &[u8]) -> String {
    untrusted(name, MAX_MESSAGE_CHARS)
}

fn strip_lf(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
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

/// Builds the body of the request for the pack, in the protocol of `advertised`: a v0 upload request
/// ([`choose_capabilities`], [`build_upload_request`]) or a v2 `fetch` command ([`v2::build_fetch_request`]).
pub fn build_fetch(
    advertised: &Advertisement,
    agent: &str,
    wants: &[ObjectId],
    haves: &[ObjectId],
) -> Result<Vec<u8>, ProtocolError> {
    match advertised.protocol {
        Protocol::V0 => {
            let capabilities = choose_capabilities(advertised, agent)?;
            build_upload_request(wants, haves, &capabilities)
        }
        Protocol::V2 => v2::build_fetch_request(advertised, agent, wants, haves),
    }
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
    /// A v2 response before its `packfile` section.
    V2(v2::Preamble),
    Acknowledgements,
    SideBand,
    Ended,
}

/// Incremental decoder of the upload-pack response body (sent with a side-band capability), or of a v2 `fetch`
/// response (sections, then the pack in side-band packets).
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
    /// A decoder at the start of a v0/v1 response.
    pub fn new() -> Self {
        Self::for_protocol(Protocol::V0)
    }

    /// A decoder at the start of a response in `protocol`.
    pub fn for_protocol(protocol: Protocol) -> Self {
        Self {
            packets: Decoder::new(),
            state: match protocol {
                Protocol::V0 => ResponseState::Acknowledgements,
                Protocol::V2 => ResponseState::V2(v2::Preamble::SectionHeader),
            },
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
        if let ResponseState::V2(mut preamble) = self.state {
            return self.next_v2_preamble_event(&mut preamble);
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
            return Err(ProtocolError::Remote(untrusted(message, MAX_MESSAGE_CHARS)));
        }
        if self.state == ResponseState::Acknowledgements {
            if data.first().is_some_and(u8::is_ascii_graphic) {
                let line = strip_lf(&data);
                if line == b"NAK" || line.starts_with(b"ACK ") {
                    let line = String::from_utf8_lossy(line).into_owned();
                    return Ok(Some(ResponseEvent::Acknowledgement(line)));
                }
                if line.starts_with(b"shallow ") || line.starts_with(b"unshallow ") {
                    return Err(ProtocolError::ShallowResponse(untrusted(
                        line,
                        MAX_MESSAGE_CHARS,
                    )));
                }
                return Err(response_error(&format!(
                    "unexpected line before pack data: \"{}\"",
                    untrusted(line, MAX_MESSAGE_CHARS)
                )));
            }
            self.state = ResponseState::SideBand;
        }
        match pktline::demux(data)? {
            Band::Data(pack) => Ok(Some(ResponseEvent::PackData(pack))),
            Band::Progress(text) => Ok(Some(ResponseEvent::Progress(text))),
            Band::Error(text) => Err(ProtocolError::Remote(untrusted(&text, MAX_MESSAGE_CHARS))),
        }
    }

    /// Decodes v2 preamble packets up to the first event or the start of the pack.
    fn next_v2_preamble_event(
        &mut self,
        preamble: &mut v2::Preamble,
    ) -> Result<Option<ResponseEvent>, ProtocolError> {
        while let Some(packet) = self.packets.next_packet()? {
            if let Packet::Data(data) = &packet {
                if let Some(message) = data.strip_prefix(b"ERR ") {
                    return Err(ProtocolError::Remote(untrusted(message, MAX_MESSAGE_CHARS)));
                }
            }
            let step = v2::preamble_packet(preamble, packet)?;
            self.state = ResponseState::V2(*preamble);
            match step {
                v2::PreambleStep::Nothing => {}
                v2::PreambleStep::Event(event) => return Ok(Some(event)),
                v2::PreambleStep::Packfile => {
                    self.state = ResponseState::SideBand;
                    return self.next_event();
                }
            }
        }
        Ok(None)
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
            ResponseState::Acknowledgements | ResponseState::V2(_) => {
                Err(ProtocolError::Truncated(
                    "upload-pack response: it ends before any pack data".into(),
                ))
            }
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
mod tests;

use super::*;
use sha1::{Digest, Sha1};
use std::path::Path;
use testkit::git::{git, output_with_input, run_ok_with_input, upload_pack_command};

pub(super) const A: &str = "1111111111111111111111111111111111111111";
pub(super) const B: &str = "2222222222222222222222222222222222222222";
pub(super) const C: &str = "3333333333333333333333333333333333333333";
const CAPS: &str = "multi_ack thin-pack side-band side-band-64k ofs-delta shallow no-progress \
                        symref=HEAD:refs/heads/main object-format=sha1 agent=git/2.47.3";

pub(super) fn oid(hex: &str) -> ObjectId {
    hex.parse().unwrap()
}

/// Encodes each line as a data pkt-line, except the literal "0000", which becomes a flush.
pub(super) fn wire(lines: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        match *line {
            "0000" => out.extend_from_slice(pktline::FLUSH),
            data => pktline::write_data(&mut out, data.as_bytes()).unwrap(),
        }
    }
    out
}

pub(super) fn service_header() -> Vec<u8> {
    wire(&["# service=git-upload-pack\n", "0000"])
}

fn advertise(lines: &[&str]) -> Result<Advertisement, ProtocolError> {
    let mut body = service_header();
    body.extend(wire(lines));
    parse_advertisement(&body)
}

fn reference(name: &str, hex: &str, peeled: Option<&str>) -> Ref {
    Ref {
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
    let adv = advertise(&[&first, &second, "0000"]).unwrap();
    assert!(adv.refs.is_empty());
    assert_eq!(adv.skipped, ["refs/heads/main\\u{0}side-band"]);
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
        let peeled = format!("{B} {bad}^{{}}\n");
        let main = format!("{C} refs/heads/main\n");
        let adv = advertise(&[&line, &peeled, &main, "0000"]).unwrap();
        assert_eq!(adv.refs, [reference("refs/heads/main", C, None)], "{bad:?}");
        assert_eq!(
            adv.skipped,
            [untrusted(bad.as_bytes(), MAX_MESSAGE_CHARS)],
            "{bad:?}"
        );
    }
    let mut body = service_header();
    body.extend(wire(&[&format!("{A} refs/heads/\u{1b}[31m\n"), "0000"]));
    let adv = parse_advertisement(&body).unwrap();
    assert_eq!(adv.skipped, ["refs/heads/\\u{1b}[31m"]);
    let mut line = format!("{A} refs/heads/").into_bytes();
    line.extend_from_slice(b"\xff\n");
    let mut body = service_header();
    pktline::write_data(&mut body, &line).unwrap();
    body.extend_from_slice(pktline::FLUSH);
    assert_eq!(
        parse_advertisement(&body).unwrap().skipped,
        ["refs/heads/\u{fffd}"]
    );
    let symref = format!("{A} refs/heads/main\0side-band symref=HEAD:refs/heads/a..b\n");
    let adv = advertise(&[&symref, "0000"]).unwrap();
    assert_eq!(adv.head_symref, None);
    assert_eq!(adv.skipped, ["symref=HEAD:refs/heads/a..b"]);
    assert_eq!(adv.refs, [reference("refs/heads/main", A, None)]);
}

/// A peeled line still has to follow its own ref: skipping a bad name does not excuse an orphan peel.
#[test]
fn a_peeled_line_after_a_skipped_ref_must_name_it() {
    let bad = format!("{A} refs/heads/a..b\n");
    let orphan = format!("{B} refs/tags/v1^{{}}\n");
    assert!(matches!(
        advertise(&[&bad, &orphan, "0000"]),
        Err(ProtocolError::Advertisement { .. })
    ));
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
    decode_in(Protocol::V0, body, chunk)
}

/// [`decode`] for a response in `protocol`.
pub(super) fn decode_in(
    protocol: Protocol,
    body: &[u8],
    chunk: usize,
) -> (Vec<ResponseEvent>, Result<(), ProtocolError>) {
    let mut decoder = ResponseDecoder::for_protocol(protocol);
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
pub(super) fn merged(events: Vec<ResponseEvent>) -> Vec<ResponseEvent> {
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

pub(super) fn pack_bytes(events: &[ResponseEvent]) -> Vec<u8> {
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
            ProtocolError::ShallowResponse(format!("shallow {A}")),
        ),
        (
            vec!["NAK\n", &unshallow],
            ProtocolError::ShallowResponse(format!("unshallow {A}")),
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

/// A repository with two commits on `main`, a branch, an annotated and a lightweight tag.
pub(super) fn real_repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(["init", "-q", "-b", "main"], repo);
    std::fs::write(repo.join("a.txt"), "hello\n").unwrap();
    git(["add", "a.txt"], repo);
    git(["commit", "-q", "-m", "one"], repo);
    git(["tag", "-a", "-m", "release", "v1"], repo);
    git(["branch", "feature"], repo);
    std::fs::write(repo.join("b.txt"), "world\n").unwrap();
    git(["add", "b.txt"], repo);
    git(["commit", "-q", "-m", "two"], repo);
    git(["tag", "light"], repo);
    dir
}

/// What `git http-backend` serves for `info/refs?service=git-upload-pack`.
pub(super) fn real_advertisement(repo: &Path, env: &[(&str, &str)]) -> Vec<u8> {
    let mut cmd = upload_pack_command(repo, true);
    cmd.envs(env.iter().copied());
    let mut body = service_header();
    body.extend(run_ok_with_input(&mut cmd, b"").stdout);
    body
}

#[test]
fn real_git_advertisement() {
    let dir = real_repository();
    let repo = dir.path();
    let adv = parse_advertisement(&real_advertisement(repo, &[])).unwrap();
    let rev = |name: &str| oid(git(["rev-parse", name], repo).trim());
    assert_eq!(adv.head, Some(rev("HEAD")));
    assert_eq!(adv.head_symref.as_deref(), Some("refs/heads/main"));
    assert_eq!(
        adv.refs,
        vec![
            Ref {
                name: "refs/heads/feature".into(),
                oid: rev("HEAD~1"),
                peeled: None
            },
            Ref {
                name: "refs/heads/main".into(),
                oid: rev("HEAD"),
                peeled: None
            },
            Ref {
                name: "refs/tags/light".into(),
                oid: rev("HEAD"),
                peeled: None
            },
            Ref {
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
    git(["init", "-q", "-b", "main"], dir.path());
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
    let response = output_with_input(&mut upload_pack_command(repo, false), request).stdout;
    decode(&response, chunk)
}

pub(super) fn assert_valid_pack(pack: &[u8], objects: u32) {
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
    let old = oid(git(["rev-parse", "HEAD~1"], repo).trim());
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

use super::*;
use crate::git::pktline::PktLineError;
use crate::git::upload_pack::tests::{
    assert_valid_pack, decode_in, merged, oid, pack_bytes, real_advertisement, real_repository,
    service_header, wire, A, B, C,
};
use crate::git::upload_pack::{build_fetch, ResponseDecoder};
use bytes::Bytes;
use testkit::git::{git, output_with_input, upload_pack_command};

const V2_CAPS: [&str; 6] = [
    "version 2\n",
    "agent=git/2.47.3\n",
    "ls-refs=unborn\n",
    "fetch=shallow wait-for-done\n",
    "server-option\n",
    "object-format=sha1\n",
];

/// Encodes lines as [`wire`] does, and "0001" as a delimiter.
fn wire2(lines: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        match *line {
            "0001" => out.extend_from_slice(pktline::DELIMITER),
            other => out.extend(wire(&[other])),
        }
    }
    out
}

fn v2_server() -> Advertisement {
    let mut body = service_header();
    body.extend(wire(&V2_CAPS));
    body.extend(wire(&["0000"]));
    match parse_discovery(&body).unwrap() {
        Discovery::V2(server) => server,
        other => panic!("expected v2, got {other:?}"),
    }
}

#[test]
fn discovery_reads_a_v2_capability_advertisement_with_or_without_service_header() {
    let server = v2_server();
    assert_eq!(server.protocol, Protocol::V2);
    assert!(server.refs.is_empty() && server.head.is_none());
    assert_eq!(
        server.capability_value("fetch"),
        Some("shallow wait-for-done")
    );
    assert!(server.has_capability("server-option"));
    let mut bare = wire(&V2_CAPS);
    bare.extend(wire(&["0000"]));
    assert_eq!(parse_discovery(&bare), Ok(Discovery::V2(server)));
}

#[test]
fn discovery_falls_back_to_a_v0_advertisement() {
    let mut body = service_header();
    let first = format!("{A} HEAD\0side-band-64k symref=HEAD:refs/heads/main\n");
    let main = format!("{A} refs/heads/main\n");
    body.extend(wire(&[&first, &main, "0000"]));
    let Ok(Discovery::V0(advertisement)) = parse_discovery(&body) else {
        panic!("expected a v0 advertisement");
    };
    assert_eq!(advertisement.protocol, Protocol::V0);
    assert_eq!(advertisement.refs.len(), 1);
    assert_eq!(
        advertisement.head_symref.as_deref(),
        Some("refs/heads/main")
    );
    // v0 errors stay v0 errors.
    let mut wrong = wire(&["# service=git-receive-pack\n", "0000"]);
    wrong.extend(wire(&[&main, "0000"]));
    assert!(matches!(
        parse_discovery(&wrong),
        Err(ProtocolError::Advertisement { .. })
    ));
}

#[test]
fn hostile_capability_advertisements_are_refused() {
    let with = |lines: &[&str]| {
        let mut body = wire(lines);
        body.extend(wire(&["0000"]));
        parse_discovery(&body)
    };
    let error = with(&["version 2\n", "agent=x\n", "fetch\n"]).unwrap_err();
    assert!(
        error.to_string().contains("no `ls-refs` command"),
        "{error}"
    );
    let error = with(&["version 2\n", "ls-refs\n"]).unwrap_err();
    assert!(error.to_string().contains("no `fetch` command"), "{error}");
    assert_eq!(
        with(&[
            "version 2\n",
            "ls-refs\n",
            "fetch\n",
            "object-format=sha256\n"
        ]),
        Err(ProtocolError::UnsupportedObjectFormat("sha256".into()))
    );
    for bad in [
        "=value\n",
        "fe tch\n",
        "ls-refs\x01\n",
        "\n",
        "fetch=a\x1bb\n",
    ] {
        let error = with(&["version 2\n", "ls-refs\n", "fetch\n", bad]).unwrap_err();
        assert!(
            error.to_string().contains("invalid protocol v2 capability"),
            "{bad:?}: {error}"
        );
    }
    // Truncated: no flush after the capabilities, or cut inside a packet.
    let full = with(&["version 2\n", "ls-refs\n", "fetch\n"]).unwrap();
    let mut body = wire(&["version 2\n", "ls-refs\n", "fetch\n", "0000"]);
    assert_eq!(parse_discovery(&body), Ok(full));
    for cut in 1..body.len() {
        assert!(parse_discovery(&body[..cut]).is_err(), "cut at {cut}");
    }
    body.extend(wire(&["ls-refs\n"]));
    let error = parse_discovery(&body).unwrap_err();
    assert!(
        error.to_string().contains("data after the final flush"),
        "{error}"
    );
    // A delimiter where capabilities belong.
    let mut body = wire(&["version 2\n", "ls-refs\n"]);
    body.extend(wire2(&["0001", "fetch\n", "0000"]));
    assert!(matches!(
        parse_discovery(&body),
        Err(ProtocolError::Advertisement { .. })
    ));
}

#[test]
fn ls_refs_request_bytes() {
    let server = v2_server();
    let prefixes = ["refs/heads/".to_owned(), "refs/tags/".to_owned()];
    let request = build_ls_refs_request(&server, "mirror-test/1", &prefixes).unwrap();
    assert_eq!(
        request,
        wire2(&[
            "command=ls-refs\n",
            "agent=mirror-test/1\n",
            "object-format=sha1\n",
            "0001",
            "symrefs\n",
            "peel\n",
            "ref-prefix HEAD\n",
            "ref-prefix refs/heads/\n",
            "ref-prefix refs/tags/\n",
            "0000"
        ])
    );
    // No agent or object-format line for a server that advertises neither.
    let bare = Advertisement {
        capabilities: vec!["ls-refs".into(), "fetch".into()],
        protocol: Protocol::V2,
        ..Advertisement::default()
    };
    let request = build_ls_refs_request(&bare, "a/1", &["refs/".to_owned()]).unwrap();
    assert_eq!(
        request,
        wire2(&[
            "command=ls-refs\n",
            "0001",
            "symrefs\n",
            "peel\n",
            "ref-prefix HEAD\n",
            "ref-prefix refs/\n",
            "0000"
        ])
    );
    for bad in ["", "refs/a b", "refs/\n", "refs/\0"] {
        assert_eq!(
            build_ls_refs_request(&server, "a/1", &[bad.to_owned()]),
            Err(ProtocolError::InvalidRefPrefix(untrusted(
                bad.as_bytes(),
                MAX_MESSAGE_CHARS
            ))),
            "{bad:?}"
        );
    }
    assert!(matches!(
        build_ls_refs_request(&server, "bad agent", &prefixes),
        Err(ProtocolError::InvalidCapability(_))
    ));
}

fn ls_refs(lines: &[&str]) -> Result<Advertisement, ProtocolError> {
    parse_ls_refs(&wire2(lines), v2_server())
}

#[test]
fn ls_refs_answer_with_symref_and_peeled_tags() {
    let head = format!("{A} HEAD symref-target:refs/heads/main\n");
    let main = format!("{A} refs/heads/main\n");
    let tag = format!("{B} refs/tags/v1 peeled:{C}\n");
    let future =
        format!("{C} refs/heads/x some-future-attribute:1 symref-target:refs/heads/main\n");
    let advertisement = ls_refs(&[&head, &main, &tag, &future, "0000"]).unwrap();
    assert_eq!(advertisement.head, Some(oid(A)));
    assert_eq!(
        advertisement.head_symref.as_deref(),
        Some("refs/heads/main")
    );
    let names: Vec<(&str, Option<ObjectId>)> = advertisement
        .refs
        .iter()
        .map(|r| (r.name.as_str(), r.peeled))
        .collect();
    assert_eq!(
        names,
        [
            ("refs/heads/main", None),
            ("refs/tags/v1", Some(oid(C))),
            ("refs/heads/x", None)
        ]
    );
    assert_eq!(advertisement.capabilities, v2_server().capabilities);
    // An empty repository answers a bare flush.
    let empty = ls_refs(&["0000"]).unwrap();
    assert!(empty.refs.is_empty() && empty.head.is_none());
}

#[test]
fn hostile_ls_refs_answers_are_refused() {
    let main = format!("{A} refs/heads/main\n");
    let head = format!("{A} HEAD\n");
    assert_eq!(
        ls_refs(&[&main, &main, "0000"]),
        Err(ProtocolError::DuplicateRef("refs/heads/main".into()))
    );
    assert_eq!(
        ls_refs(&[&head, &head, "0000"]),
        Err(ProtocolError::DuplicateRef("HEAD".into()))
    );
    // Names git could not store are left out and listed, as in a v0 advertisement.
    let bad_names = [
        format!("{A} refs/heads/a..b\n"),
        format!("{A} main\n"),
        format!("{A} HEAD symref-target:main\n"),
    ];
    let lines: Vec<&str> = bad_names
        .iter()
        .map(String::as_str)
        .chain([main.as_str(), "0000"])
        .collect();
    let advertisement = ls_refs(&lines).unwrap();
    assert_eq!(
        advertisement.skipped,
        ["refs/heads/a..b", "main", "symref=HEAD:main"]
    );
    assert_eq!(advertisement.refs.len(), 1);
    assert_eq!(advertisement.head_symref, None);
    for bad in [
        format!("{A}\n"),
        "xyz refs/heads/main\n".to_owned(),
        "unborn HEAD symref-target:refs/heads/main\n".to_owned(),
        format!("{A} refs/tags/v1 peeled:nothex\n"),
    ] {
        assert!(
            matches!(
                ls_refs(&[&bad, "0000"]),
                Err(ProtocolError::Advertisement { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        ls_refs(&["ERR access denied\n"]),
        Err(ProtocolError::Remote("access denied".into()))
    );
    assert!(matches!(
        ls_refs(&[&main, "0001", "0000"]),
        Err(ProtocolError::Advertisement { .. })
    ));
    let error = ls_refs(&[&main, "0000", &main]).unwrap_err();
    assert!(
        error.to_string().contains("data after the final flush"),
        "{error}"
    );
    // Truncated anywhere: an error, never a shorter list of refs.
    let body = wire2(&[&head, &main, "0000"]);
    for cut in 0..body.len() {
        assert!(
            parse_ls_refs(&body[..cut], v2_server()).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn fetch_request_bytes() {
    let server = v2_server();
    let request = build_fetch_request(
        &server,
        "mirror-test/1",
        &[oid(A), oid(B), oid(A)],
        &[oid(C)],
    )
    .unwrap();
    let (want_a, want_b, have_c) = (
        format!("want {A}\n"),
        format!("want {B}\n"),
        format!("have {C}\n"),
    );
    assert_eq!(
        request,
        wire2(&[
            "command=fetch\n",
            "agent=mirror-test/1\n",
            "object-format=sha1\n",
            "0001",
            "ofs-delta\n",
            "no-progress\n",
            &want_a,
            &want_b,
            &have_c,
            "done\n",
            "0000"
        ])
    );
    assert_eq!(
        build_fetch(
            &server,
            "mirror-test/1",
            &[oid(A), oid(B), oid(A)],
            &[oid(C)]
        ),
        Ok(request)
    );
    assert_eq!(
        build_fetch_request(&server, "a/1", &[], &[oid(C)]),
        Err(ProtocolError::NoWants)
    );
}

fn decode(body: &[u8], chunk: usize) -> (Vec<ResponseEvent>, Result<(), ProtocolError>) {
    decode_in(Protocol::V2, body, chunk)
}

fn packfile_section() -> Vec<u8> {
    wire(&[
        "packfile\n",
        "\x02Counting objects: 1\r",
        "\x01PACK\0\0\0\x02",
        "\x01\0\0\0\0rest",
        "0000",
    ])
}

#[test]
fn fetch_response_at_every_chunk_size() {
    let expected = vec![
        ResponseEvent::Progress(Bytes::from_static(b"Counting objects: 1\r")),
        ResponseEvent::PackData(Bytes::from_static(b"PACK\0\0\0\x02")),
        ResponseEvent::PackData(Bytes::from_static(b"\0\0\0\0rest")),
        ResponseEvent::End,
    ];
    let body = packfile_section();
    let mut with_acks = wire2(&["acknowledgments\n", "ACK 1111\n", "ready\n", "0001"]);
    with_acks.extend(&body);
    let mut acks_expected = vec![
        ResponseEvent::Acknowledgement("ACK 1111".into()),
        ResponseEvent::Acknowledgement("ready".into()),
    ];
    acks_expected.extend(expected.clone());
    for (body, expected) in [(body, expected), (with_acks, acks_expected)] {
        for chunk in 1..=body.len() {
            let (events, end) = decode(&body, chunk);
            assert_eq!(end, Ok(()), "chunk {chunk}");
            assert_eq!(merged(events), merged(expected.clone()), "chunk {chunk}");
        }
        // Cut anywhere, the response is an error, never a shorter pack that ends cleanly.
        for cut in 0..body.len() {
            let (_, end) = decode(&body[..cut], 3);
            assert!(end.is_err(), "cut at {cut}");
        }
    }
}

#[test]
fn hostile_fetch_responses_are_refused() {
    let error_of = |body: Vec<u8>| decode(&body, 1).1.unwrap_err();
    let response = |prefix: &[&str]| {
        let mut body = wire2(prefix);
        body.extend(packfile_section());
        body
    };
    for (prefix, expected) in [
        (
            vec!["shallow-info\n", "0001"],
            "shallow pack (\"shallow-info\")",
        ),
        (vec!["wanted-refs\n", "0001"], "section \"wanted-refs\""),
        (vec!["packfile-uris\n", "0001"], "section \"packfile-uris\""),
        (
            vec!["bundle-uri\n", "0001"],
            "unknown section \"bundle-uri\"",
        ),
        (
            vec!["0001"],
            "delimiter or response-end packet where a section header belongs",
        ),
        (vec!["0000"], "flush packet before any section"),
        // The acknowledgments section without the delimiter that ends it.
        (
            vec!["acknowledgments\n", "NAK\n"],
            "unexpected line in the acknowledgments section: \"packfile\"",
        ),
        (
            vec!["acknowledgments\n", "NAK\n", "0000"],
            "without the packfile section",
        ),
        (
            vec!["acknowledgments\n", "bogus\n"],
            "unexpected line in the acknowledgments section: \"bogus\"",
        ),
    ] {
        let error = error_of(response(&prefix));
        assert!(error.to_string().contains(expected), "{prefix:?}: {error}");
    }
    assert_eq!(
        error_of(wire(&["ERR upload-pack: not our ref 1111\n"])),
        ProtocolError::Remote("upload-pack: not our ref 1111".into())
    );
    // Inside the packfile section, v2 special packets and unknown bands are errors.
    let mut body = wire(&["packfile\n", "\x01PACK"]);
    body.extend(wire2(&["0001"]));
    assert!(matches!(error_of(body), ProtocolError::Response(_)));
    assert_eq!(
        error_of(wire(&["packfile\n", "\x05oops"])),
        ProtocolError::PktLine(PktLineError::UnknownBand(5))
    );
    let mut body = packfile_section();
    body.extend(wire(&["packfile\n"]));
    assert!(error_of(body)
        .to_string()
        .contains("data after the final flush"));
}

/// Runs `upload-pack --stateless-rpc` in protocol v2 on a request and returns its raw answer.
fn real_v2(repo: &std::path::Path, request: &[u8]) -> Vec<u8> {
    let mut command = upload_pack_command(repo, false);
    command.env("GIT_PROTOCOL", GIT_PROTOCOL_HEADER_VALUE);
    output_with_input(&mut command, request).stdout
}

#[test]
fn real_git_v2_ls_refs_and_fetch() {
    let dir = real_repository();
    let repo = dir.path();
    let rev = |name: &str| oid(git(["rev-parse", name], repo).trim());
    let body = real_advertisement(repo, &[("GIT_PROTOCOL", GIT_PROTOCOL_HEADER_VALUE)]);
    let Discovery::V2(server) = parse_discovery(&body).unwrap() else {
        panic!("git did not answer in v2");
    };
    // Everything, then only tags: the server leaves the branches out.
    let request = build_ls_refs_request(&server, "mirror-test/1", &["refs/".to_owned()]).unwrap();
    let all = parse_ls_refs(&real_v2(repo, &request), server.clone()).unwrap();
    let v0 = crate::git::upload_pack::parse_advertisement(&real_advertisement(repo, &[])).unwrap();
    assert_eq!(all.refs, v0.refs);
    assert_eq!(
        (all.head, all.head_symref.as_deref()),
        (Some(rev("HEAD")), Some("refs/heads/main"))
    );
    let request =
        build_ls_refs_request(&server, "mirror-test/1", &["refs/tags/".to_owned()]).unwrap();
    let tags = parse_ls_refs(&real_v2(repo, &request), server.clone()).unwrap();
    let names: Vec<&str> = tags.refs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["refs/tags/light", "refs/tags/v1"]);
    assert_eq!(tags.refs[1].peeled, Some(rev("HEAD~1")));
    assert_eq!(tags.head, Some(rev("HEAD")), "HEAD is always asked for");

    // A full fetch: 2 commits, 2 trees, 2 blobs, 1 tag.
    let wants: Vec<ObjectId> = all.refs.iter().map(|r| r.oid).collect();
    let request = build_fetch(&all, "mirror-test/1", &wants, &[]).unwrap();
    let response = real_v2(repo, &request);
    for chunk in [1, 7, 1 << 16] {
        let (events, end) = decode(&response, chunk);
        assert_eq!(end, Ok(()));
        assert_eq!(events.last(), Some(&ResponseEvent::End));
        assert_valid_pack(&pack_bytes(&events), 7);
    }
    // An incremental fetch with `done`: no acknowledgments section, only what is new.
    let request = build_fetch(&all, "mirror-test/1", &[rev("HEAD")], &[rev("HEAD~1")]).unwrap();
    let (events, end) = decode(&real_v2(repo, &request), 5);
    assert_eq!(end, Ok(()));
    assert_valid_pack(&pack_bytes(&events), 3);
    // A want the server does not have.
    let request = build_fetch(&all, "mirror-test/1", &[oid(A)], &[]).unwrap();
    let mut decoder = ResponseDecoder::for_protocol(Protocol::V2);
    decoder.push(&real_v2(repo, &request));
    let error = std::iter::from_fn(|| decoder.next_event().transpose())
        .find_map(Result::err)
        .unwrap_or_else(|| decoder.finish().unwrap_err());
    assert!(error.to_string().contains("not our ref"), "{error}");
}

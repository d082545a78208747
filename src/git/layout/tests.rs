use super::*;

fn oid(n: u8) -> ObjectId {
    ObjectId([n; 20])
}

fn sample() -> Vec<Ref> {
    let mut refs = vec![
        Ref {
            name: "refs/tags/v1".into(),
            oid: oid(2),
            peeled: Some(oid(1)),
        },
        Ref {
            name: "refs/heads/main".into(),
            oid: oid(1),
            peeled: None,
        },
    ];
    sort_refs(&mut refs);
    refs
}

#[test]
fn info_refs_round_trip_with_peeled_tags() {
    let refs = sample();
    let text = render_info_refs(&refs);
    let expected = format!(
        "{}\trefs/heads/main\n{}\trefs/tags/v1\n{}\trefs/tags/v1^{{}}\n",
        oid(1),
        oid(2),
        oid(1)
    );
    assert_eq!(String::from_utf8(text.clone()).unwrap(), expected);
    assert_eq!(parse_info_refs(&text).unwrap(), refs);
    assert_eq!(parse_info_refs(b"").unwrap(), vec![]);
}

#[test]
fn malformed_info_refs_are_rejected() {
    let good = oid(1).to_string();
    for bad in [
        format!("{good} refs/heads/x\n"),
        format!("{}\trefs/heads/x\n", &good[..39]),
        format!("{good}\tHEAD\n"),
        format!("{good}\trefs/tags/v1^{{}}\n"),
        "garbage\n".to_string(),
    ] {
        assert!(parse_info_refs(bad.as_bytes()).is_err(), "{bad:?}");
    }
    assert!(parse_info_refs(&[0xff, b'\t']).is_err());
}

#[test]
fn packed_refs_and_head_formats() {
    let text = String::from_utf8(render_packed_refs(&sample())).unwrap();
    assert!(text.starts_with("# pack-refs with: peeled fully-peeled sorted \n"));
    assert!(text.ends_with(&format!("{} refs/tags/v1\n^{}\n", oid(2), oid(1))));
    assert_eq!(
        render_head(&Head::Symbolic("refs/heads/trunk".into())),
        b"ref: refs/heads/trunk\n"
    );
    assert_eq!(
        render_head(&Head::Detached(oid(3))),
        format!("{}\n", oid(3)).into_bytes()
    );
}

#[test]
fn packs_list_round_trip_and_hostile_lines() {
    let text = render_packs(&[oid(1), oid(2)]);
    assert_eq!(
        String::from_utf8(text.clone()).unwrap(),
        format!("P pack-{}.pack\nP pack-{}.pack\n\n", oid(1), oid(2))
    );
    assert_eq!(parse_packs(&text).unwrap(), vec![oid(1), oid(2)]);
    assert_eq!(render_packs(&[]), b"\n");
    assert!(parse_packs(b"P pack-zz.pack\n").is_err());
    assert!(parse_packs(format!("P pack-{}.pack\r\n", oid(1)).as_bytes()).is_err());
    assert!(parse_packs(b"P ../../etc/passwd\n").is_err());
}

#[test]
fn pack_keys() {
    assert_eq!(pack_id_of_key(&pack_key(&oid(7))), Some(oid(7)));
    assert_eq!(pack_id_of_key(&idx_key(&oid(7))), Some(oid(7)));
    assert_eq!(pack_id_of_key("objects/pack/incoming-1.pack"), None);
    assert_eq!(pack_id_of_key("objects/pack/pack-xyz.pack"), None);
}

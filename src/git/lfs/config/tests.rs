use super::*;

#[test]
fn the_root_tree_of_a_commit() {
    let id = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
    let commit = format!("tree {id}\nauthor A <a@b> 0 +0000\n\nmessage\n");
    assert_eq!(
        commit_tree(commit.as_bytes()),
        Some(ObjectId::from_hex(id.as_bytes()).unwrap())
    );
    for bad in [
        &b""[..],
        b"tree 4b82\n",
        b"parent x\n",
        b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904 \n",
    ] {
        assert_eq!(commit_tree(bad), None, "{bad:?}");
    }
}

fn entry(mode: &str, name: &str, fill: u8) -> Vec<u8> {
    let mut out = format!("{mode} {name}\0").into_bytes();
    out.extend_from_slice(&[fill; 20]);
    out
}

#[test]
fn the_lfsconfig_entry_of_a_tree() {
    let tree = [
        entry("100644", ".gitattributes", 1),
        entry("40000", ".lfsconfig", 2),
        entry("100644", ".lfsconfig", 3),
        entry("100644", "z", 4),
    ]
    .concat();
    assert_eq!(tree_file(&tree, LFSCONFIG), Some(ObjectId([3; 20])));
    let link = entry("120000", ".lfsconfig", 5);
    assert_eq!(tree_file(&link, LFSCONFIG), None, "a symlink is not read");
    assert_eq!(tree_file(&tree[..tree.len() - 5], b"z"), None, "truncated");
    assert_eq!(tree_file(b"100644 no-nul", LFSCONFIG), None);
    assert_eq!(tree_file(b"", LFSCONFIG), None);
}

#[test]
fn lfs_url_as_git_config_reads_it() {
    let config = b"[core]\n\turl = https://wrong\n[lfs]\n\t# a comment\n\tURL = \"https://lfs.example.com/r\" ; why\n";
    assert_eq!(
        lfs_url(config).as_deref(),
        Some("https://lfs.example.com/r")
    );
    let twice = b"[lfs]\nurl = https://one\n[LFS]\nurl=https://two\n";
    assert_eq!(lfs_url(twice).as_deref(), Some("https://two"));
    for none in [
        &b""[..],
        b"[lfs]\n",
        b"[lfs]\nurl =\n",
        b"[lfsx]\nurl = x\n",
        b"url = https://x\n",
        &[0xff, 0xfe][..],
    ] {
        assert_eq!(lfs_url(none), None, "{none:?}");
    }
}

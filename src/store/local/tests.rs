//! What only the local directory promises. The [`Store`] contract itself is checked on this backend and on S3
//! by `tests/store_contract.rs`, which also checks after every test that the directory holds exactly the
//! listed keys (no temporary files left) and that nothing outside the root was touched.

use super::*;

fn store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().join("mirror"));
    (dir, store)
}

/// The names in `dir` (not recursive), sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn etags_are_the_content_sha1() {
    let (_dir, s) = store();
    let hello = Bytes::from_static(b"hello");
    let etag = s.put("HEAD", hello, Precondition::None).await.unwrap();
    assert_eq!(etag, "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
    // Quoted ETags (as S3 returns them) are accepted too.
    let quoted = Precondition::IfMatch(format!("\"{etag}\""));
    s.put("HEAD", Bytes::from_static(b"e"), quoted)
        .await
        .unwrap();
    assert_eq!(s.get("HEAD").await.unwrap().unwrap().body, "e");

    let data: Vec<u8> = (0..3_500_000u32).map(|i| (i % 251) as u8).collect();
    let mut up = s
        .create_upload("objects/pack/pack-x.pack", crate::store::FIRST_PART_SIZE)
        .await
        .unwrap();
    for chunk in data.chunks(77_777) {
        up.write(chunk).await.unwrap();
    }
    up.complete(Precondition::IfNoneMatch).await.unwrap();
    let got = s.get("objects/pack/pack-x.pack").await.unwrap().unwrap();
    assert!(got.body == data);
    assert_eq!(got.etag, hex(&Sha1::digest(&data)));
}

#[tokio::test]
async fn racing_creates_have_one_winner() {
    let (_dir, s) = store();
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.put("lock", Bytes::from(vec![i]), Precondition::IfNoneMatch)
                .await
        }));
    }
    let mut winners = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => winners += 1,
            Err(StoreError::PreconditionFailed { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn directories_are_not_objects() {
    let (_dir, s) = store();
    s.put(
        "refs/heads/main",
        Bytes::from_static(b"x"),
        Precondition::None,
    )
    .await
    .unwrap();
    assert_eq!(s.get("refs/heads").await.unwrap(), None);
    assert!(matches!(
        s.get_range("refs", 0, 1).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.copy("refs", "c", 0, Precondition::None).await,
        Err(StoreError::NotFound { .. })
    ));
    // A file where a directory is needed, and the reverse, are errors rather than surprises.
    assert!(matches!(
        s.put("refs/heads/main/x", Bytes::new(), Precondition::None)
            .await,
        Err(StoreError::Io { .. })
    ));
    assert!(matches!(
        s.put("refs/heads", Bytes::new(), Precondition::None).await,
        Err(StoreError::Io { .. })
    ));
    assert!(matches!(s.delete("refs").await, Err(StoreError::Io { .. })));
    assert_eq!(s.get("refs/heads/main/x").await.unwrap(), None);
}

#[tokio::test]
async fn temporary_files_are_not_listed() {
    let (dir, s) = store();
    s.put("a", Bytes::from_static(b"1"), Precondition::None)
        .await
        .unwrap();
    let up = s
        .create_upload("b", crate::store::FIRST_PART_SIZE)
        .await
        .unwrap();
    assert_eq!(s.list("").await.unwrap().len(), 1);
    assert_eq!(
        names(&dir.path().join("mirror")).len(),
        2,
        "the upload's temporary file exists"
    );
    up.abort().await.unwrap();
    assert_eq!(names(&dir.path().join("mirror")), ["a"]);
}

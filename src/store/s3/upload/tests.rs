use super::*;
use crate::store::{S3Options, FIRST_PART_SIZE};

#[tokio::test]
async fn uploads_stop_at_the_object_size_limit() {
    // No server: the limit is checked before anything is buffered or sent.
    let store = S3Store::connect("b", "p", &S3Options::default())
        .await
        .unwrap();
    let mut upload = S3Upload::new(store, ("huge", "p/huge".to_owned()), FIRST_PART_SIZE);
    upload.written = MAX_OBJECT_SIZE - 1;
    upload.write(b"x").await.unwrap();
    let err = upload.write(b"y").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::TooLarge {
                limit: MAX_OBJECT_SIZE,
                ..
            }
        ),
        "{err}"
    );
}

use super::*;

#[test]
fn temporary_upload_names_differ_within_a_process() {
    assert_ne!(run_id(), run_id());
}

#[tokio::test]
async fn a_resolution_nobody_awaits_fails_its_next_read() {
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let source = Stoppable {
        inner: Box::new(Bytes::from_static(b"0123")),
        stopped: Arc::clone(&stop.0),
    };
    assert_eq!(&source.read_at(1, 2).await.unwrap()[..], b"12");
    drop(stop);
    let err = source.read_at(1, 2).await.unwrap_err();
    assert!(err.to_string().contains("stopped"), "{err}");
}

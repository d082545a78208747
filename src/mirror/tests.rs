use super::*;

#[test]
fn mirror_repos_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let options = MirrorOptions::default();
    let mappings = [Mapping {
        source: "https://example.com/r.git".into(),
        target: "s3://b/p".into(),
    }];
    assert_send(&mirror_repos(&mappings, &options));
}

#[test]
fn source_urls_must_be_http() {
    assert!(parse_source_url("https://example.com/a/b.git").is_ok());
    for bad in ["ftp://x/y", "not a url", "file:///etc", "https://"] {
        assert!(parse_source_url(bad).is_err(), "{bad}");
    }
}

/// Records which mapping each progress update named.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<(usize, String, String, Stage)>>);

impl crate::progress::Progress for Recorder {
    fn update(&self, mapping: MappingId<'_>, stage: Stage) {
        let record = (
            mapping.index,
            mapping.source.to_owned(),
            mapping.target.to_owned(),
            stage,
        );
        self.0.lock().unwrap().push(record);
    }
}

#[tokio::test]
async fn two_mappings_of_one_source_are_told_apart_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let target = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    // Nothing listens on port 1: each run reports `Negotiating`, then fails to connect.
    let source = "http://user:secret@127.0.0.1:1/repo.git";
    let mappings = [
        Mapping {
            source: source.into(),
            target: target("a"),
        },
        Mapping {
            source: source.into(),
            target: target("b"),
        },
    ];
    let recorder = Arc::new(Recorder::default());
    let options = MirrorOptions {
        progress: Some(recorder.clone()),
        ..MirrorOptions::default()
    };
    let reports = mirror_repos(&mappings, &options).await;
    assert!(reports.iter().all(|r| !r.is_ok()), "{reports:?}");

    let mut updates = recorder.0.lock().unwrap().clone();
    updates.sort_by_key(|u| u.0);
    let shown = upstream::redact_str(source);
    assert!(!shown.contains("secret"), "{shown}");
    assert_eq!(
        updates,
        [
            (0, shown.clone(), target("a"), Stage::Negotiating),
            (1, shown, target("b"), Stage::Negotiating),
        ]
    );
}

//! Tests of the pipeline document (`setup.rs`): every part read, errors naming the field,
//! the sink from the environment, no secret in `Debug`, sinks checked when built.

use super::*;

fn field_of(text: &str) -> String {
    match PipelineConfig::from_json(text) {
        Err(Error::Config(c)) => c.field,
        other => panic!("{text}: {other:?}"),
    }
}

#[test]
fn debug_shows_no_secret() {
    for doc in [
        r#"{"sink":{"type":"http","url":"http://u:S3cret@h/x","bearer_token":"S3cret",
                    "headers":{"Authorization":"Bearer S3cret"}}}"#,
        r#"{"sink":{"type":"datastorage","url":"https://u:S3cret@h"}}"#,
        r#"{"sink":{"type":"rabbitmq","url":"amqp://u:S3cret@h/%2f","queue":"q"}}"#,
    ] {
        let shown = format!("{:?}", PipelineConfig::from_json(doc).unwrap());
        assert!(!shown.contains("S3cret"), "{shown}");
        assert!(shown.contains("u:***@h"), "{shown}");
    }
}

#[test]
fn every_part_reads() {
    let c = PipelineConfig::from_json(
        r#"{"service":"s","queue_capacity":7,
            "sink":{"type":"http","url":"http://127.0.0.1:9/x","format":"ndjson",
                    "headers":{"X-Tenant":"blue"},"bearer_token":"t",
                    "connect_timeout_ms":100,"timeout_ms":2000},
            "store":{"type":"memory","params":{"max_events":5}}}"#,
    )
    .unwrap();
    assert_eq!(c.config().queue_capacity, 7);
    assert_eq!(c.config().service_name(), "s");
    assert!(matches!(c.config().store, Some(StoreConfig::Memory(_))));
    let expect = HttpConfig::default()
        .format(BodyFormat::Ndjson)
        .header("X-Tenant", "blue")
        .bearer_token("t")
        .connect_timeout(Duration::from_millis(100))
        .timeout(Duration::from_secs(2));
    assert_eq!(
        c.sink(),
        Some(&SinkConfig::Http {
            url: "http://127.0.0.1:9/x".into(),
            http: expect
        })
    );
    let c =
        PipelineConfig::from_json(r#"{"sink":{"type":"datastorage","url":"http://h"}}"#).unwrap();
    assert!(matches!(c.sink(), Some(SinkConfig::DataStorage { .. })));
    assert_eq!(c.config(), &Config::default());
    assert!(PipelineConfig::from_json("{}").unwrap().sink().is_none());
}

#[test]
fn errors_name_the_field() {
    for (doc, field) in [
        (r#"{"queue_capacty":1}"#, "queue_capacty"),
        (
            r#"{"queue_capacity":1,"queue_capacity":2}"#,
            "queue_capacity",
        ),
        (r#"{"sink":{"type":"null"},"sink":{"type":"null"}}"#, "sink"),
        (r#"{"sink":{"type":"null"}} x"#, "(document)"),
        ("[]", "(document)"),
        (r#"{"sink":"http"}"#, "sink"),
        (r#"{"sink":{"url":"http://h"}}"#, "sink.type"),
        (r#"{"sink":{"type":5}}"#, "sink.type"),
        (r#"{"sink":{"type":"tape"}}"#, "sink.type"),
        (r#"{"sink":{"type":"http"}}"#, "sink.url"),
        (r#"{"sink":{"type":"http","url":"h","ulr":1}}"#, "sink.ulr"),
        // A second value of a key would win silently.
        (
            r#"{"sink":{"type":"http","url":"http://a","url":"http://b"}}"#,
            "sink.url",
        ),
        (r#"{"sink":{"type":"null","type":"http"}}"#, "sink.type"),
        (
            r#"{"sink":{"type":"http","url":"h","headers":{"X-A":"1","X-A":"2"}}}"#,
            "sink.headers.X-A",
        ),
        (
            r#"{"sink":{"type":"http","url":"h","timeout_ms":"x"}}"#,
            "sink.timeout_ms",
        ),
        (
            r#"{"sink":{"type":"http","url":"h","timeout_ms":0}}"#,
            "sink.timeout_ms",
        ),
        (
            r#"{"sink":{"type":"http","url":"h","format":"xml"}}"#,
            "sink.format",
        ),
        (
            r#"{"sink":{"type":"http","url":"h","headers":{"a":1}}}"#,
            "sink.headers.a",
        ),
        (
            r#"{"sink":{"type":"datastorage","url":"h","format":"ndjson"}}"#,
            "sink.format",
        ),
        (r#"{"sink":{"type":"null","url":"h"}}"#, "sink.url"),
        (
            r#"{"store":{"type":"file","params":{"pth":"/x"}}}"#,
            "store.params.pth",
        ),
        (r#"{"store":{"type":"tape"}}"#, "store.type"),
    ] {
        assert_eq!(field_of(doc), field, "{doc}");
    }
}

#[test]
fn the_environment_names_the_rabbitmq_sink() {
    let env = crate::config::tests::fake_env;
    let registry = StoreRegistry::new();
    let c = PipelineConfig::from_vars("AUDIT", &registry, env(&[])).unwrap();
    assert_eq!(c.sink(), None);
    let c = PipelineConfig::from_vars(
        "AUDIT",
        &registry,
        env(&[
            ("AUDIT_RABBITMQ_URL", "amqp://u:p@rabbit/%2f"),
            ("AUDIT_RABBITMQ_QUEUE", "notifications.info"),
            ("AUDIT_CONFIG", r#"{"queue_capacity":7}"#),
            ("AUDIT_BACKING_STORE", r#"{"type":"memory"}"#),
        ]),
    )
    .unwrap();
    assert_eq!(
        c.sink(),
        Some(&SinkConfig::RabbitMq(RabbitMqConfig::new(
            "amqp://u:p@rabbit/%2f",
            "notifications.info"
        )))
    );
    assert_eq!(c.config().queue_capacity, 7);
    assert!(c.config().store.is_some());
    match PipelineConfig::from_vars(
        "AUDIT",
        &registry,
        env(&[("AUDIT_RABBITMQ_URL", "amqp://h")]),
    ) {
        Err(Error::Config(c)) => assert_eq!(c.field, "AUDIT_RABBITMQ_QUEUE"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sinks_are_checked_when_built() {
    let err = |doc: &str| PipelineConfig::from_json(doc).unwrap().build().unwrap_err();
    assert!(
        matches!(err("{}"), Error::Config(c) if c.field == "sink"),
        "a document without a sink cannot build"
    );
    let e = err(r#"{"sink":{"type":"http","url":"ftp://h"}}"#);
    assert!(
        matches!(&e, Error::Config(c) if c.field.starts_with("sink.")),
        "{e}"
    );
    let e = err(r#"{"sink":{"type":"http","url":"http://h","token_file":"/nonexistent/t"}}"#);
    assert!(e.to_string().contains("/nonexistent/t"), "{e}");
    let with_sink = PipelineConfig::from_json(r#"{"sink":{"type":"null"}}"#).unwrap();
    assert!(matches!(
        with_sink.build_with_sink(NullSink),
        Err(Error::Config(c)) if c.field == "sink"
    ));
}

#[test]
fn an_unknown_field_lists_sink_and_store_and_no_position_from_another_text() {
    let reason = |text: &str| match PipelineConfig::from_json(text) {
        Err(Error::Config(c)) => (c.field, c.reason),
        other => panic!("{text}: {other:?}"),
    };
    let (field, why) = reason(r#"{"sink":{"type":"null"},"queu_capacity":5}"#);
    assert_eq!(field, "queu_capacity");
    assert!(why.starts_with("unknown field `queu_capacity`"), "{why}");
    assert!(
        why.contains("`queue_capacity`") && why.ends_with("`sink`, `store`"),
        "{why}"
    );
    // serde counts lines and columns in the part it read (the settings rebuilt without
    // `sink`, or the store's object alone): no position is better than a wrong one.
    let (field, why) = reason(r#"{"retry":{"max_attemps":3},"sink":{"type":"null"}}"#);
    assert_eq!(field, "retry.max_attemps");
    assert!(!why.contains("`sink`"), "retry's own fields only: {why}");
    for doc in [
        r#"{"sink":{"type":"null"},  "queue_capacity":"many"}"#,
        r#"{"store":{"type":"memory","params":{"max_event":1}}}"#,
        r#"{"sink":{"type":"http","url":"http://127.0.0.1/x","timeout_ms":"soon"}}"#,
        r#"{"sink":{"type":"http","url":"http://127.0.0.1/x","url":"http://127.0.0.1/y"}}"#,
        r#"{"store":{"type":"file","params":{"path":"/tmp/a","path":"/tmp/b"}}}"#,
        r#"{"retry":{"max_attempts":3,"max_attempts":4}}"#,
    ] {
        let (field, why) = reason(doc);
        assert!(
            !why.contains(" at line ") && !why.contains(" at byte "),
            "{field}: {why}"
        );
    }
}

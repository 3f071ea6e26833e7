//! Tests of the RabbitMQ sink that need no broker: message ids read from the event, bad
//! URLs refused when built, and a password kept out of what a failed connection reports.

use super::*;

#[test]
fn message_ids_are_read_from_the_event() {
    for (event, id) in [
        (
            &br#"{"typeURI":"t","id":"e-1","eventTime":"x"}"#[..],
            Some("e-1"),
        ),
        (br#"{"typeURI":"a\"b\\","id":"e-2"}"#, Some("e-2")),
        (br#"{"typeURI":"t","id":"a\"b"}"#, Some("a\"b")),
        (br#"{"x":{"id":"inner"},"id":"outer"}"#, Some("outer")),
        (br#"{"event_type":"login"}"#, None),
        (br#"{"id":7}"#, None),
        (br#"{"id":""}"#, None),
    ] {
        assert_eq!(
            message_id(event).as_deref(),
            id,
            "{}",
            String::from_utf8_lossy(event)
        );
    }
    let long = format!(r#"{{"typeURI":"t","id":"{}"}}"#, "x".repeat(256));
    assert_eq!(message_id(long.as_bytes()), None);
}

#[test]
fn a_sink_without_a_broker_retries_and_names_the_target_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = RabbitMqConfig::new(format!("amqp://audit:hunter22@127.0.0.1:{port}/%2f"), "q")
        .connect_timeout(Duration::from_secs(2));
    let mut sink = RabbitMqSink::new(config).unwrap();
    match sink.send(&[b"{}"]) {
        Outcome::Retry { reason, .. } => {
            assert!(reason.contains("audit:***@127.0.0.1"), "{reason}");
            assert!(reason.contains("queue \"q\""), "{reason}");
            assert!(!reason.contains("hunter22"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let err = sink.connect().unwrap_err().to_string();
    assert!(!err.contains("hunter22"), "{err}");
}

#[test]
fn bad_urls_are_refused_when_built() {
    let err =
        RabbitMqSink::new(RabbitMqConfig::new("amqp://u:hunter22@h:notaport/", "q")).unwrap_err();
    assert!(
        matches!(&err, Error::Config(c) if c.field == "url"),
        "{err}"
    );
    assert!(!err.to_string().contains("hunter22"), "{err}");
}

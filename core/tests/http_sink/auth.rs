//! Credentials and TLS: bearer tokens rotated on disk, an extra CA file, and passwords in
//! the URL kept out of reasons and errors.

use super::*;

#[test]
fn a_rotated_token_is_used_by_the_next_request() {
    let dir = std::env::temp_dir().join(format!("auditbuf-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "old-token\n").unwrap();
    let receiver = Receiver::start(|b| {
        if b.header("authorization") == Some("Bearer new-token") {
            Reply::created()
        } else {
            Reply::status(401)
        }
    });
    let p = pipeline(
        &receiver.url(),
        config(),
        HttpConfig::default().token_file(&token),
    );
    // The sink read "old-token" when it was built; the file is rotated afterwards, and the
    // very first request already carries the new one.
    std::fs::write(&token, "new-token\n").unwrap();
    let all = ids(5);
    record_all(&p, &all);
    let report = p.close(CLOSE);
    assert_exactly_once(&receiver, &all);
    let auth: Vec<_> = receiver
        .requests()
        .into_iter()
        .map(|r| r.authorization.unwrap())
        .collect();
    assert_eq!(auth, ["Bearer new-token"]);
    assert_settled(&report.stats);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_token_rotated_during_a_backoff_is_never_sent_stale() {
    // The receiver refuses the old token; the right one is written 1.5 s after start, in
    // the middle of the 401 retries. With the default retry budget nothing fails, and no
    // request built after the rotation carries the old token.
    let dir = std::env::temp_dir().join(format!("auditbuf-token-late-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "old-token\n").unwrap();
    let receiver = Receiver::start(|b| {
        if b.header("authorization") == Some("Bearer new-token") {
            Reply::created()
        } else {
            Reply::status(401)
        }
    });
    let p = pipeline(
        &receiver.url(),
        Config::default()
            .batch_max_events(50)
            .flush_interval(Duration::from_millis(20)),
        HttpConfig::default().token_file(&token),
    );
    let all = ids(1000);
    record_all(&p, &all);
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(&token, "new-token\n").unwrap();
    let rotated = Instant::now();
    let report = p.close(Duration::from_secs(30));
    assert_exactly_once(&receiver, &all);
    assert_eq!(report.stats.failed, 0, "{:?}", report.stats);
    let stale_after: Vec<_> = receiver
        .requests()
        .into_iter()
        .filter(|r| {
            r.at > rotated + Duration::from_millis(50)
                && r.authorization.as_deref() == Some("Bearer old-token")
        })
        .collect();
    assert!(stale_after.is_empty(), "{stale_after:?}");
    assert_settled(&report.stats);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn https_with_an_extra_ca_file() {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let dir = std::env::temp_dir().join(format!("auditbuf-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, cert.pem()).unwrap();
    let server = tiny_http::Server::https(
        "127.0.0.1:0",
        tiny_http::SslConfig {
            certificate: cert.pem().into_bytes(),
            private_key: signing_key.serialize_pem().into_bytes(),
        },
    )
    .unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    let received = Arc::new(AtomicUsize::new(0));
    let server = Arc::new(server);
    let serving = {
        let (server, received) = (Arc::clone(&server), Arc::clone(&received));
        std::thread::spawn(move || {
            while let Ok(Some(mut req)) = server.recv_timeout(Duration::from_secs(10)) {
                let mut body = String::new();
                req.as_reader().read_to_string(&mut body).unwrap();
                let events: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
                received.fetch_add(events.len(), Ordering::SeqCst);
                req.respond(tiny_http::Response::empty(201)).unwrap();
            }
        })
    };
    let url = format!("https://localhost:{port}/events");

    let trusting = pipeline(&url, config(), HttpConfig::default().ca_file(&ca));
    record_all(&trusting, &ids(25));
    let report = trusting.close(CLOSE);
    assert_eq!(report.stats.delivered, 25);
    assert_eq!(received.load(Ordering::SeqCst), 25);
    assert_settled(&report.stats);

    // Without the CA the certificate is unknown: retried, then failed, never delivered.
    let retry = RetryPolicy::default()
        .max_attempts(2)
        .backoff(Duration::from_millis(1), Duration::from_millis(2));
    let doubting = pipeline(&url, config().retry(retry), HttpConfig::default());
    record_all(&doubting, &ids(5));
    let report = doubting.close(CLOSE);
    assert_eq!(report.stats.failed, 5);
    assert!(
        doubting.last_error().unwrap().contains("UnknownIssuer"),
        "{:?}",
        doubting.last_error()
    );
    assert_eq!(received.load(Ordering::SeqCst), 25);
    assert_settled(&report.stats);

    server.unblock();
    serving.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_ca_or_token_file_is_a_clear_error() {
    let err = HttpSink::new(
        "https://127.0.0.1:1/",
        HttpConfig::default().ca_file("/nonexistent/ca.pem"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    let err = DataStorageSink::with_config(
        "http://127.0.0.1:1",
        HttpConfig::default().token_file("/nonexistent/token"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/token"), "{err}");
    let err = HttpSink::new("localhost:8080", HttpConfig::default()).unwrap_err();
    assert!(err.to_string().contains("url"), "{err}");
}

#[test]
fn a_password_in_the_url_never_reaches_reasons_or_errors() {
    let receiver = Receiver::start(|b| {
        if b.index == 0 {
            Reply::problem(422, "nope")
        } else {
            Reply::status(503)
        }
    });
    let url = receiver.url().replace("http://", "http://alice:S3cretPW@");
    let retry = RetryPolicy::default()
        .max_attempts(2)
        .backoff(Duration::from_millis(5), Duration::from_millis(5));
    let p = pipeline(&url, config().retry(retry), HttpConfig::default());
    record_all(&p, &ids(1));
    p.flush(CLOSE);
    record_all(&p, &ids(1));
    let report = p.close(CLOSE);
    // ureq sends it as Basic authentication, as asked; it is shown nowhere.
    assert!(receiver.requests()[0].authorization.is_some());
    let letter = &p.dead_letters()[0].reason;
    assert!(
        letter.contains("HTTP 422 from http://alice:***@127.0.0.1:"),
        "{letter}"
    );
    let error = p.last_error().unwrap_or_default();
    assert!(error.contains("HTTP 503 from http://alice:***@"), "{error}");
    for shown in [letter, &error, &format!("{p:?}")] {
        assert!(!shown.contains("S3cretPW"), "{shown}");
    }
    assert_eq!((report.stats.dead_lettered, report.stats.failed), (1, 1));
    assert_settled(&report.stats);
}

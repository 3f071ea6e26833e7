//! Name resolution for the HTTP sink's agent: no lookup for an address written in the URL,
//! and a host name's addresses reused for a few seconds.
//!
//! ureq resolves the URL's host before every request, even one that goes out on a pooled
//! keep-alive connection and never uses the addresses. With a timeout set (the sink always
//! sets one) its default resolver does each lookup on a new thread, so that it can give up
//! on it: a thread created and destroyed per batch, and for a host name a DNS query per
//! batch (in Kubernetes, one to the cluster's DNS service for each request). Only a new
//! connection uses the addresses, so reusing them for [`REUSE_FOR`] changes where no batch
//! goes, except that a host moved to a new address is reached at most that much later —
//! and no later than the next attempt after a request that failed in transport (refused,
//! reset, timed out; an HTTP error status does not count), which forgets them
//! ([`Lookups::forget`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long a host name's addresses are reused.
pub(crate) const REUSE_FOR: Duration = Duration::from_secs(5);

/// Only a lookup that is due runs ureq's own resolver (on a short-lived thread, so that it
/// can be given up at the request's timeout): at most one per host name per [`REUSE_FOR`],
/// and a batch sent longer than that after the last one does one.
#[derive(Debug, Default)]
pub(crate) struct SinkResolver {
    lookup: DefaultResolver,
    last: Lookups,
}

/// The last host name looked up (`host:port`), its addresses and when; shared by the
/// resolver inside the agent and the sink that owns the agent.
#[derive(Debug, Default, Clone)]
pub(crate) struct Lookups(Arc<Mutex<Option<(String, Instant, ResolvedSocketAddrs)>>>);

impl Lookups {
    /// Forgets the addresses kept: the next new connection looks the name up again. Called
    /// when a request failed in transport (no HTTP response), which may be because the
    /// host moved.
    pub(crate) fn forget(&self) {
        *self.0.lock() = None;
    }
}

impl SinkResolver {
    /// A resolver keeping its lookups in `last`.
    pub(crate) fn new(last: Lookups) -> Self {
        SinkResolver {
            lookup: DefaultResolver::default(),
            last,
        }
    }
}

impl Resolver for SinkResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let Some(authority) = uri.authority() else {
            return self.lookup.resolve(uri, config, timeout);
        };
        let port = authority.port_u16().or_else(|| match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        let Some(port) = port else {
            return self.lookup.resolve(uri, config, timeout);
        };
        let host = authority.host();
        // `[v6]` only in brackets, v4 only without: `[127.0.0.1]` is looked up (and fails)
        // as ureq's own resolver would.
        let literal = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
            None => host.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        };
        if let Some(ip) = literal {
            let mut addrs = self.empty();
            addrs.push(SocketAddr::new(ip, port));
            return Ok(addrs);
        }
        // Not the authority as written: it may hold credentials (a proxy's URL comes here too).
        let key = format!("{host}:{port}");
        if let Some((name, at, addrs)) = &*self.last.0.lock()
            && *name == key
            && at.elapsed() < REUSE_FOR
        {
            return Ok(addrs.clone());
        }
        let addrs = self.lookup.resolve(uri, config, timeout)?;
        *self.last.0.lock() = Some((key, Instant::now(), addrs.clone()));
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(r: &SinkResolver, url: &str) -> Vec<SocketAddr> {
        let uri: Uri = url.parse().unwrap();
        let config = Config::default();
        r.resolve(&uri, &config, NextTimeout::default())
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    #[test]
    fn addresses_in_the_url_are_taken_as_written() {
        let r = SinkResolver::default();
        assert_eq!(
            resolve(&r, "http://127.0.0.1:8080/api"),
            ["127.0.0.1:8080".parse().unwrap()]
        );
        assert_eq!(
            resolve(&r, "https://[::1]/x"),
            ["[::1]:443".parse().unwrap()]
        );
        assert_eq!(
            resolve(&r, "http://10.0.0.7/"),
            ["10.0.0.7:80".parse().unwrap()]
        );
        // Nothing was looked up, so nothing is kept.
        assert!(r.last.0.lock().is_none());
    }

    #[test]
    fn a_host_name_is_looked_up_then_reused() {
        let r = SinkResolver::default();
        let first = resolve(&r, "http://localhost:9/");
        assert!(
            !first.is_empty() && first.iter().all(|a| a.port() == 9),
            "{first:?}"
        );
        let kept = r.last.0.lock().clone().unwrap();
        assert_eq!(kept.0, "localhost:9");
        assert_eq!(resolve(&r, "http://localhost:9/"), first);
        // Still the first lookup's entry: reused, not looked up again.
        assert_eq!(r.last.0.lock().as_ref().unwrap().1, kept.1);
        // Another port is another entry; credentials are not part of it, and a default
        // port is written out.
        resolve(&r, "http://user:secret@localhost:10/");
        assert_eq!(r.last.0.lock().as_ref().unwrap().0, "localhost:10");
        resolve(&r, "http://localhost/");
        assert_eq!(r.last.0.lock().as_ref().unwrap().0, "localhost:80");
    }

    #[test]
    fn a_failed_request_forgets_the_addresses() {
        use crate::{HttpConfig, HttpSink, Outcome, Sink};
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // One answer, then the connection and the listener close: the next request opens a
        // new connection, which resolves the name and is refused.
        let answer = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end().to_ascii_lowercase();
                if line.is_empty() {
                    break;
                }
                if let Some(n) = line.strip_prefix("content-length:") {
                    length = n.trim().parse().unwrap();
                }
            }
            reader.read_exact(&mut vec![0; length]).unwrap();
            let mut stream = reader.into_inner();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .unwrap();
        });
        let mut sink =
            HttpSink::new(format!("http://localhost:{port}/"), HttpConfig::default()).unwrap();
        let lookups = sink.lookups().clone();
        assert_eq!(sink.send(&[b"{}"]), Outcome::Delivered);
        answer.join().unwrap();
        assert!(
            lookups.0.lock().is_some(),
            "the sink's agent did not keep its lookup"
        );
        let outcome = sink.send(&[b"{}"]);
        assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
        assert!(lookups.0.lock().is_none(), "the addresses were kept");
    }
}

//! The RabbitMQ sink itself: lapin, driven from the flush thread by `async_io::block_on`.
//!
//! lapin runs its socket on a thread of its own and a few tasks (heartbeats) on smol's
//! small executor; the flush thread only blocks on futures that resolve when frames are
//! written and confirms arrive, each race against a timer, so a `send` always returns.
//! There is no tokio runtime, and none is started.

use std::borrow::Cow;
use std::cell::Cell;
use std::future::Future;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_lite::future;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::{FieldTable, ShortString};
use lapin::uri::AMQPUri;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties,
    DefaultConnectionBuilder, ExchangeKind,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::config::RabbitMqConfig;
use super::size;
use crate::throttle::Throttle;
use crate::{Error, Outcome, Sink};

/// A [`Sink`] that publishes each event as one persistent message to a RabbitMQ queue
/// (AMQP 0-9-1) and counts it delivered only once the broker confirmed it (publisher
/// confirms).
///
/// A batch is published whole, then every confirm is awaited. All confirmed: the batch is
/// delivered. Otherwise the events up to the first that was not confirmed are delivered,
/// and that one and those after it are kept and sent again ([`Outcome::Partial`], or
/// [`Outcome::Retry`] when none was confirmed): whether the broker refused it (a nack, such
/// as a full queue with `overflow: reject-publish`), returned it as unroutable (no queue
/// bound for its routing key: messages are published `mandatory`), or the connection was
/// lost or timed out before its confirm came. Nothing the broker did not confirm is ever
/// counted delivered, dead-lettered or dropped; the pipeline's retry policy does the
/// waiting, then keeps the rest in the backing store. After a lost connection the next
/// `send` connects again. Delivery is at least once: a message whose confirm was lost, or
/// that followed a refused one, is published again with the same `message_id` (the event's
/// `id`), by which consumers de-duplicate.
///
/// Building the sink checks the configuration, not the broker: a pipeline starts while
/// the broker is down and keeps what it records.
///
/// ```no_run
/// use auditbuf::{CadfEvent, CadfResource, Config, Pipeline, RabbitMqConfig, RabbitMqSink};
/// use std::time::Duration;
///
/// let sink = RabbitMqSink::new(RabbitMqConfig::new("amqp://guest:guest@localhost:5672/%2f", "audit"))?;
/// let pipeline = Pipeline::new(Config::default().service("keystone"), sink)?;
/// pipeline.record_cadf(&CadfEvent::new(
///     "authenticate",
///     "success",
///     CadfResource::new("service/security/account/user", "u-1"),
///     CadfResource::new("service/security/account/user", "u-1"),
///     CadfResource::new("service/identity", "keystone-1"),
/// ))?;
/// let report = pipeline.close(Duration::from_secs(5));
/// assert_eq!(report.stats.delivered, 1);
/// # Ok::<(), auditbuf::Error>(())
/// ```
pub struct RabbitMqSink {
    config: RabbitMqConfig,
    uri: AMQPUri,
    tls: OwnedTLSConfig,
    /// `url` without its password, for messages.
    shown: String,
    /// The password, to scrub from the broker's and the client's messages just in case.
    password: String,
    exchange: ShortString,
    routing_key: ShortString,
    link: Option<Link>,
    /// Rate limits for the two kinds of warning: batches not wholly confirmed, and
    /// connection attempts that failed.
    log_batches: Throttle,
    log_connects: Throttle,
    /// The broker's `max_message_size`, once it refused a message over it (`size.rs`): a
    /// batch holding a larger event is then too large at once, without a channel closed
    /// for it again. Kept for the sink's life: a broker's limit rarely changes while it runs.
    max_message: Option<usize>,
}

/// An open connection and its channel in confirm mode.
struct Link {
    // Dropping the connection closes it (lapin's closer) and stops its thread.
    _connection: Connection,
    channel: Channel,
}

impl std::fmt::Debug for RabbitMqSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMqSink")
            .field("url", &self.shown)
            .field("queue", &self.config.queue)
            .field("exchange", &self.config.exchange)
            .field("routing_key", &self.routing_key.as_str())
            .field("connected", &self.link.is_some())
            .finish()
    }
}

impl RabbitMqSink {
    /// A sink publishing as `config` says. Connects on the first `send`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field (`url`, `queue`, `routing_key`, …) when the
    /// configuration is invalid — the URL's message never shows its password;
    /// [`Error::Io`] when the `ca_file` cannot be read.
    pub fn new(config: RabbitMqConfig) -> Result<Self, Error> {
        config.validate()?;
        let shown = config.redacted_url();
        let uri: AMQPUri = config
            .url
            .parse()
            .map_err(|e: String| Error::config("url", format!("{shown}: {e}")))?;
        let tls = OwnedTLSConfig {
            identity: None,
            cert_chain: match &config.ca_file {
                Some(path) => Some(std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?),
                None => None,
            },
        };
        Ok(RabbitMqSink {
            password: uri.authority.userinfo.password.clone(),
            exchange: config.exchange.as_str().into(),
            routing_key: config.routing_key_name().into(),
            uri,
            tls,
            shown,
            config,
            link: None,
            log_batches: Throttle::default(),
            log_connects: Throttle::default(),
            max_message: None,
        })
    }

    /// Connects now, so that a wrong URL, credentials or queue show at start rather than
    /// as retries; `send` connects by itself otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] (`url`) with what the broker or the network said, naming the URL
    /// (without its password) and the queue.
    pub fn connect(&mut self) -> Result<(), Error> {
        self.link().map(|_| ()).map_err(|e| Error::config("url", e))
    }

    /// The channel of the open link, connecting first if there is none.
    fn link(&mut self) -> Result<Channel, String> {
        if let Some(link) = &self.link
            && link.channel.status().connected()
        {
            return Ok(link.channel.clone());
        }
        self.link = None;
        let link = block_on_for(self.config.connect_timeout, self.open())
            .map_err(|e| self.scrub(format!("{}: {e}", self.target())))?;
        let channel = link.channel.clone();
        self.link = Some(link);
        Ok(channel)
    }

    /// Connects, opens a channel in confirm mode and declares or checks the queue.
    async fn open(&self) -> Result<Link, String> {
        let c = &self.config;
        let properties = ConnectionProperties::default().with_connection_name("auditbuf".into());
        let connection = DefaultConnectionBuilder::new()
            .map_err(|e| format!("no runtime for the AMQP client: {e}"))?
            .with_uri(self.uri.clone())
            .with_properties(properties)
            .with_tls_config(self.tls.clone())
            .connect()
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| format!("cannot open a channel: {e}"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| format!("cannot turn on publisher confirms: {e}"))?;
        if !c.exchange.is_empty() {
            let check = ExchangeDeclareOptions {
                passive: true,
                ..ExchangeDeclareOptions::default()
            };
            channel
                .exchange_declare(
                    self.exchange.clone(),
                    ExchangeKind::Direct,
                    check,
                    FieldTable::default(),
                )
                .await
                .map_err(|e| format!("exchange {:?} is not there: {e}", c.exchange))?;
        }
        if !c.queue.is_empty() {
            let options = QueueDeclareOptions {
                passive: !c.declare,
                durable: true,
                ..QueueDeclareOptions::default()
            };
            let hint = if c.declare {
                " (if it exists with other settings, set declare to false to use it as it is)"
            } else {
                ""
            };
            channel
                .queue_declare(c.queue.as_str().into(), options, FieldTable::default())
                .await
                .map_err(|e| {
                    let verb = if c.declare { "declare" } else { "find" };
                    format!("cannot {verb} the queue{hint}: {e}")
                })?;
            if c.declare && !c.exchange.is_empty() {
                channel
                    .queue_bind(
                        c.queue.as_str().into(),
                        self.exchange.clone(),
                        self.routing_key.clone(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| format!("cannot bind the queue to the exchange: {e}"))?;
            }
        }
        Ok(Link {
            _connection: connection,
            channel,
        })
    }

    /// `RabbitMQ amqp://user:***@host/vhost, queue "q"` — for messages.
    fn target(&self) -> String {
        let c = &self.config;
        let mut s = format!("RabbitMQ {}", self.shown);
        if !c.queue.is_empty() {
            s.push_str(&format!(", queue {:?}", c.queue));
        }
        if !c.exchange.is_empty() {
            s.push_str(&format!(
                ", exchange {:?}, routing key {:?}",
                c.exchange,
                self.routing_key.as_str()
            ));
        }
        s
    }

    fn scrub(&self, message: String) -> String {
        // Too short a password would garble the text instead; the URL itself is never
        // printed unredacted.
        if self.password.len() >= 4 {
            message.replace(&self.password, "***")
        } else {
            message
        }
    }
}

/// Why a batch stopped being confirmed at some event.
enum Stop {
    /// The broker refused it (basic.nack).
    Nacked,
    /// The broker returned it: no queue matched (basic.return, `mandatory`).
    Returned(String),
    /// The connection or channel failed, or the time ran out, before its confirm.
    Lost(String),
}

impl Sink for RabbitMqSink {
    fn send(&mut self, batch: &[&[u8]]) -> Outcome {
        if let Some(outcome) = self.over_max_message(batch) {
            return outcome;
        }
        let channel = match self.link() {
            Ok(channel) => channel,
            Err(reason) => return self.retry(reason),
        };
        let confirmed = Cell::new(0usize);
        let started = Instant::now();
        let stop = match block_on_for(self.config.timeout, async {
            Ok(publish(
                &channel,
                &self.exchange,
                &self.routing_key,
                batch,
                &confirmed,
            )
            .await)
        }) {
            Ok(None) => return Outcome::Delivered,
            Ok(Some((at, stop))) => {
                confirmed.set(at);
                stop
            }
            Err(timeout) => Stop::Lost(format!("{timeout} ({:?} waited)", started.elapsed())),
        };
        let at = confirmed.get();
        let event = format!("event {} of {}", at + 1, batch.len());
        let reason = match stop {
            Stop::Nacked => format!(
                "{}: the broker refused {event} (nack: a full queue with overflow \
                 reject-publish, or a broker error); it and those after it are kept",
                self.target()
            ),
            Stop::Returned(why) => format!(
                "{}: the broker returned {event} as unroutable ({why}): no queue is bound for \
                 the routing key; it and those after it are kept",
                self.target()
            ),
            Stop::Lost(why) => {
                // A channel or connection error leaves the link unusable; a timeout leaves
                // confirms that may still come for messages that will be sent again.
                self.link = None;
                if let Some(max) = size::refused_size(&why) {
                    self.max_message = Some(max);
                    if let Some(outcome) = self.over_max_message(&batch[at..]) {
                        // The events before it were confirmed; it and those after it are
                        // sent again, and found too large before they are published.
                        return if at == 0 {
                            outcome
                        } else {
                            Outcome::Partial {
                                delivered: at,
                                reason: self.scrub(why),
                            }
                        };
                    }
                }
                format!(
                    "{}: no confirm for {event}: {why}; the unconfirmed are sent again",
                    self.target()
                )
            }
        };
        let reason = self.scrub(reason);
        if let Some(n) = self.log_batches.note(1) {
            log::warn!("{n} RabbitMQ batches not wholly confirmed; the last: {reason}");
        }
        if at == 0 {
            Outcome::retry(reason)
        } else {
            Outcome::Partial {
                delivered: at,
                reason,
            }
        }
    }
}

impl RabbitMqSink {
    /// Too large, when `batch` holds an event over the broker's known limit: the pipeline
    /// sends it again in halves, down to that event alone, which it dead-letters.
    fn over_max_message(&self, batch: &[&[u8]]) -> Option<Outcome> {
        let max = self.max_message?;
        let i = size::first_over(batch, max)?;
        Some(Outcome::TooLarge {
            reason: format!(
                "{}: event {} of {} is {} bytes, over the broker's max_message_size of {max} \
                 bytes (it refused such a message with PRECONDITION_FAILED)",
                self.target(),
                i + 1,
                batch.len(),
                batch[i].len()
            ),
        })
    }

    fn retry(&mut self, reason: String) -> Outcome {
        if let Some(n) = self.log_connects.note(1) {
            log::warn!("{n} RabbitMQ connection attempts failed; the last: {reason}");
        }
        Outcome::retry(reason)
    }
}

/// Publishes every event, then awaits every confirm in order. `None` when all were
/// confirmed; else the index of the first that was not, and why. `confirmed` holds how
/// many lead the batch confirmed, should the time run out meanwhile.
async fn publish(
    channel: &Channel,
    exchange: &ShortString,
    routing_key: &ShortString,
    batch: &[&[u8]],
    confirmed: &Cell<usize>,
) -> Option<(usize, Stop)> {
    let options = BasicPublishOptions {
        mandatory: true,
        immediate: false,
    };
    // Every publish is started before any is awaited: each one's frames are queued for the
    // socket on its first poll, in the batch's order, so the batch goes out as one stream
    // instead of one round trip to lapin's I/O thread per event.
    let mut publishing: Vec<_> = batch
        .iter()
        .map(|event| {
            let mut properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into());
            if let Some(id) = message_id(event) {
                properties = properties.with_message_id(id.as_ref().into());
            }
            Box::pin(channel.basic_publish(
                exchange.clone(),
                routing_key.clone(),
                options,
                event,
                properties,
            ))
        })
        .collect();
    let mut published: Vec<Option<lapin::Result<lapin::PublisherConfirm>>> =
        std::iter::repeat_with(|| None).take(batch.len()).collect();
    future::poll_fn(|cx| {
        let mut waiting = false;
        for (f, done) in publishing.iter_mut().zip(published.iter_mut()) {
            if done.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(result) => *done = Some(result),
                    Poll::Pending => waiting = true,
                }
            }
        }
        if waiting {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    drop(publishing);
    let mut pending = Vec::with_capacity(batch.len());
    let mut lost = None;
    for result in published.into_iter().flatten() {
        match result {
            Ok(confirm) => pending.push(confirm),
            Err(e) => {
                // Those after a failed publish may have gone out, but are not counted:
                // they are sent again.
                lost = Some(format!("publishing failed: {e}"));
                break;
            }
        }
    }
    // Await them all, even past a failure, so none is left registered with the channel.
    let mut first_failure = None;
    for (i, confirm) in pending.into_iter().enumerate() {
        let stop = match confirm.await {
            Ok(Confirmation::Ack(None)) => None,
            Ok(Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned))) => {
                Some(Stop::Returned(format!(
                    "{} {}",
                    returned.reply_code,
                    returned.reply_text.as_str()
                )))
            }
            Ok(Confirmation::Nack(None)) => Some(Stop::Nacked),
            Ok(Confirmation::NotRequested) => {
                Some(Stop::Lost("the channel is not in confirm mode".to_owned()))
            }
            Err(e) => Some(Stop::Lost(format!("connection lost: {e}"))),
        };
        if first_failure.is_none() {
            match stop {
                None => confirmed.set(i + 1),
                Some(stop) => first_failure = Some((i, stop)),
            }
        }
    }
    if first_failure.is_none()
        && let Some(why) = lost
    {
        return Some((confirmed.get(), Stop::Lost(why)));
    }
    // Returned messages also wait in a list of the channel's: empty it.
    if channel.status().connected() {
        let _ = channel.wait_for_confirms().await;
    }
    first_failure
}

/// Runs `f` on this thread until it completes or `limit` passes.
fn block_on_for<T>(
    limit: Duration,
    f: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    async_io::block_on(future::or(f, async {
        async_io::Timer::after(limit).await;
        Err(format!("timed out after {limit:?}"))
    }))
}

/// The event's top-level `"id"`, for the message id: read straight off a CADF event's
/// opening (`{"typeURI":"…","id":"…"`, as `record_cadf` writes it), else by a parse that
/// skips everything else. `None` without a string id of 1 to 255 bytes.
fn message_id(event: &[u8]) -> Option<Cow<'_, str>> {
    if let Some(id) = cadf_id(event) {
        return Some(Cow::Borrowed(id));
    }
    #[derive(Deserialize)]
    struct WithId<'a> {
        #[serde(borrow)]
        id: Option<&'a RawValue>,
    }
    let raw = serde_json::from_slice::<WithId<'_>>(event).ok()?.id?;
    let id: Cow<'_, str> = serde_json::from_str(raw.get()).ok()?;
    (1..=255).contains(&id.len()).then_some(id)
}

fn cadf_id(event: &[u8]) -> Option<&str> {
    let rest = event.strip_prefix(b"{\"typeURI\":\"")?;
    let mut i = 0;
    while rest.get(i)? != &b'"' {
        // An escape: skip the character it escapes.
        i += if rest[i] == b'\\' { 2 } else { 1 };
    }
    let rest = rest[i + 1..].strip_prefix(b",\"id\":\"")?;
    let end = rest.iter().position(|&c| c == b'"')?;
    let id = &rest[..end];
    if id.contains(&b'\\') || id.is_empty() || id.len() > 255 {
        return None;
    }
    std::str::from_utf8(id).ok()
}

#[cfg(test)]
#[path = "publish_tests.rs"]
mod tests;

//! What the producers record into: auditbuf, or one of the peers it is compared with. Each
//! says how a call went and counts what became of the events it took, in the same terms.

use std::time::Duration;

/// Why a call did not take the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The queue was full and the caller was told at once.
    Full,
    /// The caller waited for room and gave up.
    Timeout,
    /// Any other reason (the message is in the target's `last_error`).
    Other,
}

/// Cumulative counts of one system, as the time series and the table show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls made by the producers.
    pub offered: u64,
    /// Events taken in.
    pub accepted: u64,
    /// Events found in the store at the start (auditbuf's `recovered`).
    pub recovered: u64,
    /// Events the receiver acknowledged, as the system counts them.
    pub delivered: u64,
    /// Events the receiver refused for good and that were kept aside with its reason.
    pub dead_lettered: u64,
    /// Events given up after their sends failed.
    pub failed: u64,
    /// Calls turned away because the queue was full.
    pub rejected_full: u64,
    /// Calls that waited for room and gave up.
    pub rejected_timeout: u64,
    /// Calls turned away for any other reason.
    pub rejected_other: u64,
    /// Accepted events evicted to make room for newer ones.
    pub dropped_oldest: u64,
    /// Accepted events still buffered when the close deadline passed.
    pub dropped_shutdown: u64,
    /// Accepted events the store had no room for.
    pub dropped_store_full: u64,
    /// Accepted events lost to damage in the store.
    pub dropped_damaged: u64,
    /// Events accepted and waiting in the queue.
    pub queued: u64,
    /// Events taken by the sending thread and not settled yet.
    pub in_flight: u64,
    /// Events in the backing store.
    pub stored: u64,
}

impl Counts {
    /// Calls turned away, whatever the reason.
    pub fn rejected(&self) -> u64 {
        self.rejected_full + self.rejected_timeout + self.rejected_other
    }

    /// Accepted events given up, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_oldest + self.dropped_shutdown + self.dropped_store_full + self.dropped_damaged
    }

    /// Events lost: turned away, dropped or failed.
    pub fn lost(&self) -> u64 {
        self.rejected() + self.dropped() + self.failed
    }

    /// `accepted + recovered = delivered + dead_lettered + failed + dropped + in_flight +
    /// queued + stored`: the accounting invariant in these terms.
    pub fn balances(&self) -> bool {
        self.accepted + self.recovered
            == self.delivered
                + self.dead_lettered
                + self.failed
                + self.dropped()
                + self.in_flight
                + self.queued
                + self.stored
    }
}

/// How the system closed at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct Finish {
    /// Counts after the close (offered is filled in by the runner).
    pub counts: Counts,
    /// Whether the close finished its work before its deadline.
    pub completed: bool,
    /// Whether the system's own accounting holds (auditbuf: `Stats::is_consistent`), and
    /// what it compared.
    pub accounting: Accounting,
    /// The last error the system saw, if any.
    pub last_error: Option<String>,
    /// Events the receiver was sent twice and that count once as delivered.
    pub redelivered: u64,
    /// Further facts for the notes under the table.
    pub notes: Vec<String>,
}

/// The result of the accounting check at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accounting {
    /// Checked by the system itself, from its own counters (auditbuf's
    /// `Stats::is_consistent`).
    Checked {
        /// Whether it held.
        holds: bool,
        /// `left = right`, as numbers.
        detail: String,
    },
    /// A system that keeps no such counters, counted by the bench around it: this checks
    /// the bench's bookkeeping, not the system.
    ByTheBench {
        /// Whether it held.
        holds: bool,
        /// `left = right`, as numbers.
        detail: String,
    },
}

impl Default for Accounting {
    fn default() -> Self {
        Accounting::ByTheBench {
            holds: false,
            detail: "not checked".to_owned(),
        }
    }
}

impl Accounting {
    /// The bench's own check of `counts`.
    pub fn by_the_bench(c: &Counts) -> Accounting {
        Accounting::ByTheBench {
            holds: c.balances(),
            detail: format!(
                "{} = {}",
                crate::report::count(c.accepted + c.recovered),
                crate::report::count(
                    c.delivered
                        + c.dead_lettered
                        + c.failed
                        + c.dropped()
                        + c.in_flight
                        + c.queued
                        + c.stored
                )
            ),
        }
    }
}

/// A system under test, shared by the producer threads and the sampler.
pub trait Target: Sync {
    /// What one producer records, built once per producer.
    type Payload: Send;

    /// A short name for tables and charts.
    fn name(&self) -> &'static str;

    /// The event (and whatever else) producer `index` uses for every call.
    fn payload(&self, index: usize) -> Self::Payload;

    /// One call, as the application would make it.
    fn offer(&self, payload: &mut Self::Payload) -> Result<(), Refusal>;

    /// Counts so far, `offered` aside (the runner knows it).
    fn counts(&self, offered: u64) -> Counts;

    /// Stops taking events and sends what it can by `timeout`.
    fn finish(&self, offered: u64, timeout: Duration) -> Finish;
}

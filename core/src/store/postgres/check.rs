//! Checking a Postgres store without changing it, reading its dead letters, and moving them
//! back into its table.
//!
//! A check reads in one read-only, repeatable-read transaction: it never creates the
//! tables, claims a row or renews a lease. The table is shared: rows a live replica holds
//! (its lease has not run out) are reported, and a replay does not touch them (it only
//! inserts new rows).

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, IsolationLevel, NoTls};

use super::{PostgresStore, PostgresStoreConfig, describe, servers};
use crate::store::check::{NAMED, PartCheck, StoreCheck, is_json_object, rows_named};
use crate::{DeadLetter, Error};

impl PostgresStore {
    /// Checks the store's table without changing it: every row read; rows a live replica
    /// holds (reported with its pid), rows whose claimers kept dying (the next claim moves
    /// them to `<table>_dead`: quarantined), payloads that are not JSON objects (damaged),
    /// and the size counter against the table.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field (`url`, `table`, `lease`, …) when it is out of
    /// range; [`Error::Store`] naming the table when the server cannot be reached, the
    /// table does not exist, or a query fails.
    pub fn verify(config: &PostgresStoreConfig) -> Result<StoreCheck, Error> {
        let (mut client, location) = connect(config)?;
        let fail = |what: String| error(config, what);
        let db = |e: postgres::Error| fail(describe(&e));
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(db)?;
        let t = &config.table;
        if !table_exists(&mut tx, t).map_err(db)? {
            return Err(missing(config));
        }
        let mut check = StoreCheck::new("postgres", location);
        let max_claims = i64::from(config.max_claims);
        let query = format!(
            "SELECT id, payload, extract(epoch FROM stored_at)::float8, claimed_by,
                    coalesce(lease_until > now(), false), claims
             FROM \"{t}\" ORDER BY id"
        );
        let mut part = PartCheck::new(t, 0);
        let (mut all_bytes, mut leased, mut expired) = (0u64, 0u64, 0u64);
        let (mut holders, mut quarantined, mut not_json) =
            (BTreeSet::new(), Vec::new(), Vec::new());
        let mut rows = tx
            .query_raw(query.as_str(), std::iter::empty::<&dyn ToSql>())
            .map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            let id: i64 = row.try_get(0).map_err(db)?;
            let payload: &[u8] = row.try_get(1).map_err(db)?;
            let stored: Option<f64> = row.try_get(2).map_err(db)?;
            let claimed_by: Option<&str> = row.try_get(3).map_err(db)?;
            let live: bool = row.try_get(4).map_err(db)?;
            let claims: i32 = row.try_get(5).map_err(db)?;
            part.records += 1;
            all_bytes += payload.len() as u64;
            if !is_json_object(payload) {
                not_json.push(id);
            }
            if live {
                leased += 1;
                if let Some(owner) = claimed_by {
                    holders.insert(pid_of(owner));
                }
            } else if i64::from(claims) >= max_claims {
                quarantined.push((id, claims));
                continue;
            } else if claimed_by.is_some() {
                expired += 1;
            }
            part.kept += 1;
            check.keep(payload.len() as u64, time_of(stored.unwrap_or(0.0)));
        }
        drop(rows);
        part.bytes = all_bytes;
        let rows_held = part.records;
        let mut found = Vec::new();
        if leased > 0 {
            let held = format!(
                "{leased} rows held by a live replica ({}): it is sending them; a replay does not touch them",
                pids(&holders)
            );
            check.notes.push(format!("{t}: {held}"));
            found.push(held);
        }
        if expired > 0 {
            let note = format!(
                "{expired} rows claimed by replicas that stopped (their lease ran out): the next read takes them over"
            );
            check.notes.push(format!("{t}: {note}"));
            found.push(note);
        }
        if !quarantined.is_empty() {
            let ids: Vec<i64> = quarantined.iter().map(|(id, _)| *id).collect();
            let claims = quarantined.iter().map(|(_, c)| *c).max().unwrap_or(0);
            let moved = format!(
                "{} claimed up to {claims} times by replicas that died holding them (max_claims {}): the next read moves them to {t}_dead",
                rows_named(&ids),
                config.max_claims
            );
            check.quarantined_events = quarantined.len() as u64;
            check.quarantined.extend(
                ids.iter()
                    .take(NAMED)
                    .map(|id| format!("row id {id} → {t}_dead")),
            );
            check.problems.push(format!("{t}: {moved}"));
            found.push(moved);
            part.damaged = true;
        }
        if !not_json.is_empty() {
            let damaged = format!(
                "{}: not a JSON object (damaged); a pipeline would send it as it is and the receiver would likely refuse it",
                rows_named(&not_json)
            );
            check.problems.push(format!("{t}: {damaged}"));
            found.push(damaged);
            part.damaged = true;
        }
        if !found.is_empty() {
            part.state = found.join("; ");
        }
        check.parts.push(part);

        let dead = format!("{t}_dead");
        if table_exists(&mut tx, &dead).map_err(db)? {
            let row = tx
                .query_one(
                    format!("SELECT count(*), coalesce(sum(octet_length(payload)), 0)::bigint FROM \"{dead}\"").as_str(),
                    &[],
                )
                .map_err(db)?;
            let count: i64 = row.try_get(0).map_err(db)?;
            let bytes: i64 = row.try_get(1).map_err(db)?;
            let mut part = PartCheck::new(&dead, bytes.max(0) as u64);
            part.records = count.max(0) as u64;
            part.dead_letters = true;
            check.dead_letters = part.records;
            check.parts.push(part);
        }

        let size = format!("{t}_size");
        if table_exists(&mut tx, &size).map_err(db)? {
            let row = tx
                .query_one(
                    format!(
                        "SELECT count(*), coalesce(sum(events), 0)::bigint, coalesce(sum(bytes), 0)::bigint FROM \"{size}\""
                    )
                    .as_str(),
                    &[],
                )
                .map_err(db)?;
            let shards: i64 = row.try_get(0).map_err(db)?;
            let events: i64 = row.try_get(1).map_err(db)?;
            let bytes: i64 = row.try_get(2).map_err(db)?;
            if shards == 0 {
                check.notes.push(format!(
                    "{size}: empty; the next store open counts the table again"
                ));
            } else if events.max(0) as u64 != rows_held || bytes.max(0) as u64 != all_bytes {
                check.problems.push(format!(
                    "{size}: says {events} events and {bytes} bytes, the table holds {rows_held} and {all_bytes}: max_total_bytes would be applied to the wrong size; `DELETE FROM \"{size}\"` makes the next store open count the table again"
                ));
            }
        }
        tx.commit().map_err(db)?;
        Ok(check)
    }

    /// The dead letters in `<table>_dead`, oldest first, read without changing anything.
    ///
    /// # Errors
    ///
    /// As [`verify`](PostgresStore::verify); [`Error::Store`] also when `<table>_dead` does
    /// not exist.
    pub fn read_dead_letters(config: &PostgresStoreConfig) -> Result<Vec<DeadLetter>, Error> {
        let (mut client, _) = connect(config)?;
        let db = |e: postgres::Error| error(config, describe(&e));
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(db)?;
        let letters = dead_letters(&mut tx, config)?
            .into_iter()
            .map(|(_, letter)| letter)
            .collect();
        tx.commit().map_err(db)?;
        Ok(letters)
    }

    /// Moves the dead letters `select` picks from `<table>_dead` back into the table,
    /// oldest first, after every row there, so that a pipeline sends them again. One
    /// statement deletes them from `<table>_dead` and inserts them, so a crash leaves each
    /// in one place only, and two replays at once never move one twice. Rows replicas hold
    /// are not touched. Returns how many moved.
    ///
    /// # Errors
    ///
    /// As [`read_dead_letters`](PostgresStore::read_dead_letters); [`Error::StoreFull`]
    /// (`max_total_bytes`) if the events would take the table over that limit.
    pub fn replay_dead_letters(
        config: &PostgresStoreConfig,
        mut select: impl FnMut(&DeadLetter) -> bool,
    ) -> Result<u64, Error> {
        let (mut client, _) = connect(config)?;
        let db = |e: postgres::Error| error(config, describe(&e));
        let t = &config.table;
        let picked: Vec<(i64, u64)> = dead_letters(&mut client, config)?
            .into_iter()
            .filter(|(_, letter)| select(letter))
            .map(|(id, letter)| (id, letter.event.len() as u64))
            .collect();
        if picked.is_empty() {
            return Ok(0);
        }
        if let Some(cap) = config.max_total_bytes {
            let held: i64 = client
                .query_one(
                    format!("SELECT coalesce(sum(octet_length(payload)), 0)::bigint FROM \"{t}\"")
                        .as_str(),
                    &[],
                )
                .and_then(|row| row.try_get(0))
                .map_err(db)?;
            let adding: u64 = picked.iter().map(|(_, len)| len).sum();
            if held.max(0) as u64 + adding > cap {
                return Err(Error::StoreFull {
                    limit: "max_total_bytes",
                    value: cap,
                });
            }
        }
        let ids: Vec<i64> = picked.iter().map(|(id, _)| *id).collect();
        let moved = client
            .execute(
                format!(
                    "WITH moved AS (
                        DELETE FROM \"{t}_dead\" WHERE id = ANY($1::bigint[]) RETURNING id, payload
                     )
                     INSERT INTO \"{t}\" (payload) SELECT payload FROM moved ORDER BY id"
                )
                .as_str(),
                &[&ids],
            )
            .map_err(db)?;
        Ok(moved)
    }
}

/// `(id, bytes)` and the dead letter of every row of `<table>_dead`, oldest first.
fn dead_letters(
    client: &mut impl GenericClient,
    config: &PostgresStoreConfig,
) -> Result<Vec<(i64, DeadLetter)>, Error> {
    let db = |e: postgres::Error| error(config, describe(&e));
    let dead = format!("{}_dead", config.table);
    if !table_exists(client, &config.table).map_err(db)?
        || !table_exists(client, &dead).map_err(db)?
    {
        return Err(missing(config));
    }
    let rows = client
        .query(
            format!(
                "SELECT id, payload, reason, extract(epoch FROM dead_at)::float8 FROM \"{dead}\" ORDER BY id"
            )
            .as_str(),
            &[],
        )
        .map_err(db)?;
    rows.iter()
        .map(|row| {
            let id: i64 = row.try_get(0)?;
            let event: Vec<u8> = row.try_get(1)?;
            let reason: String = row.try_get(2)?;
            let at: Option<f64> = row.try_get(3)?;
            Ok((
                id,
                DeadLetter {
                    event,
                    reason,
                    at: time_of(at.unwrap_or(0.0)),
                },
            ))
        })
        .collect::<Result<Vec<_>, postgres::Error>>()
        .map_err(db)
}

/// Connects without creating anything; returns the client and where it is, for messages.
fn connect(config: &PostgresStoreConfig) -> Result<(Client, String), Error> {
    if let Some((field, reason)) = config.invalid() {
        return Err(Error::config(field, reason));
    }
    let mut pg = postgres::Config::from_str(&config.url)
        .map_err(|e| Error::config("url", format!("is not a Postgres connection string: {e}")))?;
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(Duration::from_secs(10));
    }
    if pg.get_application_name().is_none() {
        pg.application_name("auditbuf");
    }
    let location = format!(
        "table {} on {}/{}",
        config.table,
        servers(&pg),
        pg.get_dbname().or(pg.get_user()).unwrap_or("postgres")
    );
    let client = pg.connect(NoTls).map_err(|e| {
        error(
            config,
            format!("cannot connect to {}: {}", servers(&pg), describe(&e)),
        )
    })?;
    Ok((client, location))
}

fn table_exists(client: &mut impl GenericClient, name: &str) -> Result<bool, postgres::Error> {
    let row = client.query_one(
        "SELECT to_regclass($1::text) IS NOT NULL",
        &[&format!("\"{name}\"")],
    )?;
    row.try_get(0)
}

fn error(config: &PostgresStoreConfig, what: impl std::fmt::Display) -> Error {
    Error::store("postgres", format!("table {}: {what}", config.table))
}

fn missing(config: &PostgresStoreConfig) -> Error {
    error(
        config,
        "does not exist (no pipeline ever opened this store, or the url names another database)",
    )
}

/// The pid in an owner name (`pid4242-<random>`), or the name.
fn pid_of(owner: &str) -> String {
    owner
        .strip_prefix("pid")
        .and_then(|rest| rest.split('-').next())
        .filter(|pid| pid.parse::<u32>().is_ok())
        .map_or_else(|| owner.to_owned(), str::to_owned)
}

fn pids(pids: &BTreeSet<String>) -> String {
    let list: Vec<&str> = pids.iter().map(String::as_str).collect();
    match list.len() {
        1 => format!("pid {}", list[0]),
        _ => format!("pids {}", list.join(", ")),
    }
}

fn time_of(epoch_secs: f64) -> SystemTime {
    UNIX_EPOCH + Duration::try_from_secs_f64(epoch_secs.max(0.0)).unwrap_or_default()
}

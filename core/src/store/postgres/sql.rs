//! The SQL of the Postgres store, for one table.

use std::time::Duration;

/// The statements, for one table. Table names are checked identifiers, quoted anyway.
pub(super) struct Sql {
    pub(super) schema: String,
    pub(super) claim: String,
    pub(super) release: String,
    pub(super) renew: String,
    pub(super) commit: String,
    pub(super) append: String,
    pub(super) dead_letter: String,
    pub(super) refresh: String,
    /// Whether the size counter's triggers are in place.
    pub(super) counter_installed: String,
    /// Whether the size counter holds a count (a `TRUNCATE` empties it).
    pub(super) counter_filled: String,
    /// Puts the counter in place and counts the table once; run with the table locked.
    pub(super) install_counter: String,
    /// Counts the whole table: only where the counter cannot be installed.
    pub(super) count: String,
}

impl Sql {
    pub(super) fn new(table: &str, lease: Duration) -> Sql {
        let t = format!("\"{table}\"");
        let d = format!("\"{table}_dead\"");
        // The counter's table and its trigger function share a name (they live apart).
        let s = format!("\"{table}_size\"");
        let lease_ms = lease.as_millis();
        let age = "greatest(extract(epoch FROM now() - stored_at)::float8, 0)";
        Sql {
            schema: format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    id bigserial PRIMARY KEY,
                    payload bytea NOT NULL,
                    stored_at timestamptz NOT NULL DEFAULT now(),
                    claimed_by text,
                    lease_until timestamptz,
                    claims integer NOT NULL DEFAULT 0
                );
                CREATE TABLE IF NOT EXISTS {d} (
                    id bigserial PRIMARY KEY,
                    payload bytea NOT NULL,
                    reason text NOT NULL,
                    stored_at timestamptz,
                    dead_at timestamptz NOT NULL DEFAULT now()
                );"
            ),
            counter_installed: format!(
                "SELECT count(*) = 3 FROM pg_trigger
                 WHERE tgrelid = '{t}'::regclass
                   AND tgname IN ('auditbuf_size_insert', 'auditbuf_size_delete', 'auditbuf_size_truncate')"
            ),
            counter_filled: format!("SELECT EXISTS (SELECT 1 FROM {s})"),
            // Statement-level triggers add what each statement inserted or deleted to one
            // of 16 rows (by backend), so replicas writing at once rarely wait on each
            // other; the size is their sum.
            install_counter: format!(
                "CREATE TABLE IF NOT EXISTS {s} (
                    shard smallint PRIMARY KEY,
                    events bigint NOT NULL,
                    bytes bigint NOT NULL
                );
                CREATE OR REPLACE FUNCTION {s}() RETURNS trigger LANGUAGE plpgsql AS $body$
                DECLARE
                    changed_events bigint;
                    changed_bytes bigint;
                BEGIN
                    IF TG_OP = 'TRUNCATE' THEN
                        DELETE FROM {s};
                        RETURN NULL;
                    END IF;
                    SELECT count(*), coalesce(sum(octet_length(payload)), 0)
                        INTO changed_events, changed_bytes FROM changed;
                    IF changed_events = 0 THEN
                        RETURN NULL;
                    END IF;
                    IF TG_OP = 'DELETE' THEN
                        changed_events := -changed_events;
                        changed_bytes := -changed_bytes;
                    END IF;
                    INSERT INTO {s} AS c (shard, events, bytes)
                    VALUES (pg_backend_pid() % 16, changed_events, changed_bytes)
                    ON CONFLICT (shard) DO UPDATE
                    SET events = c.events + excluded.events, bytes = c.bytes + excluded.bytes;
                    RETURN NULL;
                END
                $body$;
                DROP TRIGGER IF EXISTS auditbuf_size_insert ON {t};
                DROP TRIGGER IF EXISTS auditbuf_size_delete ON {t};
                DROP TRIGGER IF EXISTS auditbuf_size_truncate ON {t};
                CREATE TRIGGER auditbuf_size_insert AFTER INSERT ON {t}
                    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION {s}();
                CREATE TRIGGER auditbuf_size_delete AFTER DELETE ON {t}
                    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION {s}();
                CREATE TRIGGER auditbuf_size_truncate AFTER TRUNCATE ON {t}
                    FOR EACH STATEMENT EXECUTE FUNCTION {s}();
                DELETE FROM {s};
                INSERT INTO {s} (shard, events, bytes)
                SELECT 0, count(*), coalesce(sum(octet_length(payload)), 0) FROM {t};"
            ),
            count: format!(
                "SELECT count(*), coalesce(sum(octet_length(payload)), 0)::bigint,
                        (SELECT {age} FROM {t} ORDER BY id LIMIT 1)
                 FROM {t}"
            ),
            // $1 owner, $2 most rows, $3 most bytes (each row plus one), $4 max_claims,
            // $5 rows the last read returned. A claim by another owner than the last
            // counts one more (a live owner that hands rows back takes its claim back, so
            // what is left counts owners that died holding the row); rows that would pass
            // max_claims move to the dead table instead; the
            // byte limit is applied here so no row is claimed only to be handed back;
            // rows of the last read that this read no longer returns are handed back.
            claim: format!(
                "WITH locked AS (
                    SELECT id, octet_length(payload) AS len,
                           claims + CASE WHEN claimed_by = $1::text THEN 0 ELSE 1 END AS n
                    FROM {t}
                    WHERE lease_until IS NULL OR lease_until <= now() OR claimed_by = $1::text
                    ORDER BY id
                    LIMIT $2::bigint
                    FOR UPDATE SKIP LOCKED
                ),
                poison AS (
                    DELETE FROM {t} AS t USING locked
                    WHERE t.id = locked.id AND locked.n > $4::int
                    RETURNING t.id, t.payload, t.stored_at, locked.n, locked.len
                ),
                moved AS (
                    INSERT INTO {d} (payload, reason, stored_at)
                    SELECT payload,
                           'claimed ' || n || ' times by owners that never committed it (max_claims '
                               || $4::int || ')',
                           stored_at
                    FROM poison ORDER BY id
                ),
                picked AS (
                    SELECT id, n FROM (
                        SELECT id, n, row_number() OVER w AS rn, sum(len + 1) OVER w AS running
                        FROM locked WHERE n <= $4::int
                        WINDOW w AS (ORDER BY id)
                    ) AS windowed
                    WHERE rn = 1 OR running <= $3::bigint
                ),
                released AS (
                    UPDATE {t} SET claimed_by = NULL, lease_until = NULL, claims = greatest(claims - 1, 0)
                    WHERE id IN (
                        SELECT id FROM {t}
                        WHERE id = ANY($5::bigint[]) AND claimed_by = $1::text
                          AND id NOT IN (SELECT id FROM picked) AND id NOT IN (SELECT id FROM poison)
                        FOR UPDATE SKIP LOCKED
                    )
                ),
                claimed AS (
                    UPDATE {t} AS t
                    SET claimed_by = $1::text, lease_until = now() + interval '{lease_ms} milliseconds',
                        claims = picked.n
                    FROM picked WHERE t.id = picked.id
                    RETURNING t.id, t.payload, greatest(extract(epoch FROM now() - t.stored_at)::float8, 0) AS age
                )
                SELECT id, payload, age, NULL::int AS dead_len FROM claimed
                UNION ALL
                SELECT id, NULL::bytea, 0::float8, len FROM poison"
            ),
            // A live store handing rows back takes its claim back too: only claims whose
            // claimer died (its lease ran out) count towards max_claims.
            release: format!(
                "UPDATE {t} SET claimed_by = NULL, lease_until = NULL, claims = greatest(claims - 1, 0)
                 WHERE id IN (
                     SELECT id FROM {t} WHERE id = ANY($1::bigint[]) AND claimed_by = $2::text
                     FOR UPDATE SKIP LOCKED
                 )"
            ),
            renew: format!(
                "UPDATE {t} SET lease_until = now() + interval '{lease_ms} milliseconds'
                 WHERE id IN (
                     SELECT id FROM {t}
                     WHERE id = ANY($1::bigint[]) AND claimed_by = $2::text AND lease_until IS NOT NULL
                     FOR UPDATE SKIP LOCKED
                 )"
            ),
            // Deletes what this store still holds of $1, and reports what it deleted, the
            // age of the oldest row left, and how many of $1 another owner holds now (the
            // rest of $1 was gone already: an earlier delete whose answer was lost).
            commit: format!(
                "WITH d AS (
                    DELETE FROM {t} WHERE id = ANY($1::bigint[]) AND claimed_by = $2::text
                    RETURNING id, octet_length(payload) AS len
                )
                SELECT (SELECT count(*) FROM d),
                       (SELECT coalesce(sum(len), 0)::bigint FROM d),
                       (SELECT {age} FROM {t} WHERE id NOT IN (SELECT id FROM d) ORDER BY id LIMIT 1),
                       (SELECT count(*) FROM {t}
                        WHERE id = ANY($1::bigint[]) AND claimed_by IS DISTINCT FROM $2::text)"
            ),
            append: format!(
                "INSERT INTO {t} (payload)
                 SELECT p FROM unnest($1::bytea[]) WITH ORDINALITY AS u(p, i) ORDER BY i"
            ),
            dead_letter: format!("INSERT INTO {d} (payload, reason) VALUES ($1::bytea, $2::text)"),
            refresh: format!(
                "SELECT coalesce(sum(events), 0)::bigint, coalesce(sum(bytes), 0)::bigint,
                        (SELECT {age} FROM {t} ORDER BY id LIMIT 1)
                 FROM {s}"
            ),
        }
    }
}

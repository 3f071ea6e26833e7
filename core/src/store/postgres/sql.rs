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
}

impl Sql {
    pub(super) fn new(table: &str, lease: Duration) -> Sql {
        let t = format!("\"{table}\"");
        let d = format!("\"{table}_dead\"");
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
            // $1 owner, $2 most rows, $3 most bytes (each row plus one), $4 max_claims,
            // $5 rows the last read returned. Rows another owner held count as one more
            // claim; rows that would pass max_claims move to the dead table instead; the
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
                    UPDATE {t} SET lease_until = NULL
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
            release: format!(
                "UPDATE {t} SET lease_until = NULL
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
            // Deletes what this store still holds of $1, and reports what it deleted and
            // the age of the oldest row left.
            commit: format!(
                "WITH d AS (
                    DELETE FROM {t} WHERE id = ANY($1::bigint[]) AND claimed_by = $2::text
                    RETURNING id, octet_length(payload) AS len
                )
                SELECT (SELECT count(*) FROM d),
                       (SELECT coalesce(sum(len), 0)::bigint FROM d),
                       (SELECT {age} FROM {t} WHERE id NOT IN (SELECT id FROM d) ORDER BY id LIMIT 1)"
            ),
            append: format!(
                "INSERT INTO {t} (payload)
                 SELECT p FROM unnest($1::bytea[]) WITH ORDINALITY AS u(p, i) ORDER BY i"
            ),
            dead_letter: format!("INSERT INTO {d} (payload, reason) VALUES ($1::bytea, $2::text)"),
            refresh: format!(
                "SELECT count(*), coalesce(sum(octet_length(payload)), 0)::bigint,
                        (SELECT {age} FROM {t} ORDER BY id LIMIT 1)
                 FROM {t}"
            ),
        }
    }
}

-- The statements of the PostgreSQL driver, one per "-- name:" section.
--
-- Placeholders filled by queries.py: {jobs} is the quoted jobs table, {periodic} the quoted
-- table of periodic schedules' last slots and {queues} the quoted table of queue flags. {now} is the current time
-- in milliseconds rounded down: it decides what is due, and is the due time of what may run at
-- once. {now_us} is the current time in microseconds, from which later due times are computed
-- and rounded up, `({now_us} + delay_us + 999) / 1000`, and {now_up} is it in milliseconds
-- rounded up: so nothing ever runs before its exact due instant. They read %(now_us)s, the
-- driver's clock, and fall back to the database server's clock when it is NULL (see
-- queries.py for which of the server's clocks each reads).
-- States: 0 pending, 1 reserved, 2 failed, 3 timeout, 4 completed (a kept result; due_ms is
-- when it is pruned).
--
-- Fencing: a pop stores %(token)s, fresh per pop, in the rows it reserves. Every statement that
-- settles or renews a reservation matches the caller's token in its WHERE clause, so the check
-- and the move are one step; every move out of reserved clears the token.

-- name: push
-- Insert a batch in one statement; an id already pending or reserved stays as it is, an id in
-- failed or timeout is replaced. NOTIFY is sent on commit, so a rolled-back push wakes nobody.
WITH incoming AS (
    SELECT *
    FROM unnest(
        %(ids)s::text[], %(types)s::text[], %(values)s::bytea[], %(handle_timeouts)s::bigint[],
        %(backoffs)s::bigint[], %(attempts)s::integer[], %(max_attempts)s::integer[],
        %(last_errors)s::text[], %(delays_us)s::bigint[], %(headers)s::text[],
        %(priorities)s::smallint[], %(groups)s::text[], %(keep_results)s::bigint[]
    ) WITH ORDINALITY AS t (
        id, type, value, handle_timeout_ms, backoff_ms, attempts, max_attempts, last_error,
        delay_us, headers, priority, job_group, keep_result_ms, position
    )
),
pushed AS (
    INSERT INTO {jobs} AS j (
        queue, id, state, due_ms, type, value, handle_timeout_ms, backoff_ms, attempts,
        max_attempts, last_error, headers, priority, job_group, keep_result_ms
    )
    SELECT
        %(queue)s, id, 0,
        CASE WHEN delay_us > 0 THEN ({now_us} + delay_us + 999) / 1000 ELSE {now} END,
        type, value, handle_timeout_ms, backoff_ms,
        attempts, max_attempts, last_error, headers::jsonb, priority, job_group, keep_result_ms
    FROM incoming
    ORDER BY position
    ON CONFLICT (queue, id) DO UPDATE SET
        state = 0, due_ms = excluded.due_ms, type = excluded.type, value = excluded.value,
        handle_timeout_ms = excluded.handle_timeout_ms, backoff_ms = excluded.backoff_ms,
        attempts = excluded.attempts, max_attempts = excluded.max_attempts,
        last_error = excluded.last_error, headers = excluded.headers,
        priority = excluded.priority, job_group = excluded.job_group,
        keep_result_ms = excluded.keep_result_ms,
        result = NULL, progress = NULL, progress_message = NULL, cancel_token = NULL
    WHERE j.state >= 2
    RETURNING 1
)
SELECT pg_notify(%(channel)s, %(queue)s), (SELECT count(*) FROM pushed);

-- name: reserve
-- One statement, so one transaction and one round trip. It reserves the oldest due jobs,
-- skipping (never waiting for) rows another worker holds. It also recovers jobs whose lease ran
-- out: each counts a failed attempt and goes back to pending while attempts remain, else to
-- timeout. Recovered jobs are reserved by the next look, as the statement sees one snapshot.
WITH expired AS (
    SELECT ctid AS row_id, id FROM {jobs}
    WHERE queue = %(queue)s AND state = 1 AND due_ms <= {now}
    FOR UPDATE SKIP LOCKED
),
recovered AS (
    UPDATE {jobs} AS j SET
        state = CASE WHEN j.attempts < j.max_attempts THEN 0 ELSE 3 END,
        attempts = CASE WHEN j.attempts < j.max_attempts THEN j.attempts + 1 ELSE j.attempts END,
        last_error = %(lease_expired)s,
        due_ms = {now},
        token = NULL
    WHERE j.ctid = ANY(ARRAY(SELECT row_id FROM expired))
),
-- Highest priority first, then due order (the jobs_ready index). A paused queue picks nothing.
picked AS (
    SELECT ctid AS row_id, id, due_ms, seq FROM {jobs}
    WHERE queue = %(queue)s AND state = 0 AND due_ms <= {now}
    AND NOT EXISTS (SELECT FROM {queues} WHERE queue = %(queue)s AND paused)
    ORDER BY priority DESC, due_ms, seq
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
-- Rows are found again by their physical address (locked above, so it cannot change within
-- the statement): a TID scan, whatever the planner statistics say. A join on (queue, id)
-- planned from statistics taken while the table was nearly empty scanned the whole queue once
-- per picked row.
UPDATE {jobs} AS j SET state = 1, due_ms = {now_up} + %(lease_ms)s, token = %(token)s
FROM picked
WHERE j.ctid = ANY(ARRAY(SELECT row_id FROM picked)) AND j.ctid = picked.row_id
RETURNING
    j.id, j.type, j.value, j.handle_timeout_ms, j.backoff_ms, j.attempts, j.max_attempts,
    j.last_error, j.headers, j.priority, j.job_group, j.keep_result_ms, j.result, j.progress,
    j.progress_message, picked.due_ms, picked.seq;

-- name: next_event
-- The clock's idea of now and when something next happens in the queue: a delayed job
-- becomes due or a lease runs out. A due job still here is locked by a worker about to take
-- it (or was pushed since the look): look again soon.
-- A paused queue waits for lease expiries only: resume() notifies.
SELECT {now}, LEAST(
    (SELECT min(due_ms) FROM {jobs} WHERE queue = %(queue)s AND state = 0
        AND NOT EXISTS (SELECT FROM {queues} WHERE queue = %(queue)s AND paused)),
    (SELECT min(due_ms) FROM {jobs} WHERE queue = %(queue)s AND state = 1)
);

-- name: set_paused
-- Pause or resume the queue; wake pops on commit (a resumed queue has jobs to hand out).
WITH flagged AS (
    INSERT INTO {queues} AS q (queue, paused) VALUES (%(queue)s, %(paused)s)
    ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused
    RETURNING 1
)
SELECT count(*), pg_notify(%(channel)s, %(queue)s) FROM flagged;

-- name: is_paused
SELECT EXISTS (SELECT FROM {queues} WHERE queue = %(queue)s AND paused);

-- name: ack
DELETE FROM {jobs}
WHERE queue = %(queue)s AND id = %(id)s AND state = 1 AND token = %(token)s;

-- name: ack_many
-- One statement for a batch of (id, token) pairs: each pair finds its row by primary key and
-- removes it only under that token. Returns the positions (from 1) of the stale pairs only,
-- so a batch of current holders, the usual case, sends no rows back.
WITH held AS (
    SELECT * FROM unnest(%(ids)s::text[], %(tokens)s::text[])
        WITH ORDINALITY AS h (id, token, position)
),
acked AS (
    DELETE FROM {jobs} AS j
    USING held
    WHERE j.queue = %(queue)s AND j.id = held.id AND j.state = 1 AND j.token = held.token
    RETURNING held.position
)
SELECT position FROM held WHERE position NOT IN (SELECT position FROM acked);

-- name: complete_many
-- ack_many for jobs that keep their result: each row held under its token moves to completed
-- (state 4) with its result, until keep_ms from now. Returns one row whatever happens: the
-- stale positions (from 1) as an array, and the NOTIFY that wakes `result()` waiters.
WITH held AS (
    SELECT * FROM unnest(
        %(ids)s::text[], %(tokens)s::text[], %(keeps)s::bigint[], %(results)s::bytea[]
    ) WITH ORDINALITY AS h (id, token, keep_ms, result, position)
),
kept AS (
    UPDATE {jobs} AS j SET
        state = 4, due_ms = ({now_us} + held.keep_ms * 1000 + 999) / 1000,
        keep_result_ms = held.keep_ms, result = held.result, token = NULL
    FROM held
    WHERE j.queue = %(queue)s AND j.id = held.id AND j.state = 1 AND j.token = held.token
    RETURNING held.position
)
SELECT
    ARRAY(SELECT position FROM held WHERE position NOT IN (SELECT position FROM kept)),
    CASE WHEN EXISTS (SELECT FROM kept) THEN pg_notify(%(channel)s, %(finished)s) END;

-- name: prune
-- At most %(limit)s finished rows past their retention, oldest first: completed ones whose
-- due_ms has passed, failed and timeout ones parked %(retention_ms)s ago or more (none when it
-- is NULL). Rows another worker is pruning are skipped, never waited for.
WITH doomed AS (
    SELECT ctid AS row_id FROM {jobs}
    WHERE queue = %(queue)s AND (
        (state = 4 AND due_ms <= {now})
        OR (state IN (2, 3) AND due_ms <= {now} - %(retention_ms)s::bigint)
    )
    ORDER BY due_ms
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM {jobs} WHERE ctid = ANY(ARRAY(SELECT row_id FROM doomed));

-- name: settle
-- fail and retry: move a reserved job, storing its updated envelope; on commit, wake pops
-- (%(wake)s is the queue's name) or `result()` waiters (the queue's name + ':finished').
-- Returns how many rows moved: 0 when the caller's token is stale.
WITH settled AS (
    UPDATE {jobs} SET
        state = %(state)s,
        due_ms = CASE
            WHEN %(delay_us)s > 0 THEN ({now_us} + %(delay_us)s + 999) / 1000 ELSE {now}
        END,
        backoff_ms = %(backoff_ms)s,
        attempts = %(attempts)s, last_error = %(last_error)s,
        token = NULL
    WHERE queue = %(queue)s AND id = %(id)s AND state = 1 AND token = %(token)s
    RETURNING 1
),
counted AS (SELECT count(*) AS moved FROM settled)
SELECT moved, CASE WHEN moved > 0 THEN pg_notify(%(channel)s, %(wake)s) END FROM counted;

-- name: renew
UPDATE {jobs} SET due_ms = {now_up} + %(lease_ms)s
WHERE queue = %(queue)s AND id = %(id)s AND state = 1 AND token = %(token)s;

-- name: renew_many
-- Like ack_many: the caller reads which (id, token) pairs were renewed; the others are lost.
-- Stores the progress each holder sends (NULL keeps the stored one) and answers whether a
-- cancel request names the reservation.
UPDATE {jobs} AS j SET
    due_ms = {now_up} + %(lease_ms)s,
    progress = COALESCE(held.progress, j.progress),
    progress_message = COALESCE(held.message, j.progress_message)
FROM unnest(
    %(ids)s::text[], %(tokens)s::text[], %(progresses)s::double precision[],
    %(messages)s::text[]
) AS held (id, token, progress, message)
WHERE j.queue = %(queue)s AND j.id = held.id AND j.state = 1 AND j.token = held.token
RETURNING j.id, j.token, j.cancel_token IS NOT NULL AND j.cancel_token = j.token;

-- name: release
-- Returns how many rows moved: 0 when the caller's token is stale.
WITH released AS (
    UPDATE {jobs} SET state = 0, due_ms = {now}, token = NULL
    WHERE queue = %(queue)s AND id = %(id)s AND state = 1 AND token = %(token)s
    RETURNING 1
),
counted AS (SELECT count(*) AS moved FROM released)
SELECT moved, CASE WHEN moved > 0 THEN pg_notify(%(channel)s, %(queue)s) END FROM counted;

-- name: cancel
-- Removes a pending job, or records a cancel request for the current reservation of a reserved
-- one. Returns 1 when either happened.
WITH removed AS (
    DELETE FROM {jobs} WHERE queue = %(queue)s AND id = %(id)s AND state = 0
    RETURNING 1
),
requested AS (
    UPDATE {jobs} SET cancel_token = token
    WHERE queue = %(queue)s AND id = %(id)s AND state = 1 AND NOT EXISTS (SELECT FROM removed)
    RETURNING 1
)
SELECT (SELECT count(*) FROM removed) + (SELECT count(*) FROM requested);

-- name: reload
WITH reloaded AS (
    UPDATE {jobs} SET state = 0, due_ms = {now}
    WHERE queue = %(queue)s AND state = %(state)s
    RETURNING 1
),
counted AS (SELECT count(*) AS moved FROM reloaded)
SELECT moved, CASE WHEN moved > 0 THEN pg_notify(%(channel)s, %(queue)s) END FROM counted;

-- name: flush_state
DELETE FROM {jobs} WHERE queue = %(queue)s AND state = %(state)s;

-- name: flush_waiting
DELETE FROM {jobs} WHERE queue = %(queue)s AND state = 0 AND due_ms <= {now};

-- name: flush_delayed
DELETE FROM {jobs} WHERE queue = %(queue)s AND state = 0 AND due_ms > {now};

-- name: info
SELECT state, due_ms > {now}, count(*) FROM {jobs} WHERE queue = %(queue)s GROUP BY 1, 2;

-- name: enqueue_slot
-- Periodic jobs, in one statement: advance the schedule's last slot to %(slot_ms)s if the slot
-- is not in the future ({now_us}: never early, to the microsecond) and is later than the stored
-- one, and push the slot's job due at once only when that advance returned a row. A concurrent
-- advance of the same schedule makes the upsert wait for its commit and then compare with its
-- row, so exactly one caller gets the row. The push keeps an id already pending or reserved
-- and replaces one in failed or timeout, as `push` does. Returns how many slots advanced.
WITH advanced AS (
    INSERT INTO {periodic} AS p (queue, name, last_slot_ms)
    SELECT %(queue)s, %(name)s, %(slot_ms)s::bigint
    WHERE %(slot_ms)s::bigint * 1000 <= {now_us}
    ON CONFLICT (queue, name) DO UPDATE SET last_slot_ms = excluded.last_slot_ms
    WHERE p.last_slot_ms < excluded.last_slot_ms
    RETURNING 1
),
pushed AS (
    INSERT INTO {jobs} AS j (
        queue, id, state, due_ms, type, value, handle_timeout_ms, backoff_ms, attempts,
        max_attempts, last_error, headers, priority, job_group, keep_result_ms
    )
    SELECT
        %(queue)s, %(id)s, 0, {now}, %(type)s, %(value)s, %(handle_timeout_ms)s,
        %(backoff_ms)s, %(attempts)s, %(max_attempts)s, %(last_error)s, %(headers)s::jsonb,
        %(priority)s, %(job_group)s, %(keep_result_ms)s
    FROM advanced
    ON CONFLICT (queue, id) DO UPDATE SET
        state = 0, due_ms = excluded.due_ms, type = excluded.type, value = excluded.value,
        handle_timeout_ms = excluded.handle_timeout_ms, backoff_ms = excluded.backoff_ms,
        attempts = excluded.attempts, max_attempts = excluded.max_attempts,
        last_error = excluded.last_error, headers = excluded.headers,
        priority = excluded.priority, job_group = excluded.job_group,
        keep_result_ms = excluded.keep_result_ms, result = NULL
    WHERE j.state >= 2
    RETURNING 1
)
SELECT
    (SELECT count(*) FROM advanced),
    CASE WHEN EXISTS (SELECT FROM pushed) THEN pg_notify(%(channel)s, %(queue)s) END;

-- name: schedule_slots
SELECT name, last_slot_ms FROM {periodic} WHERE queue = %(queue)s;

-- name: forget_schedule
DELETE FROM {periodic} WHERE queue = %(queue)s AND name = %(name)s;

-- name: beat
-- A worker's heartbeat, at the clock's now; then up to 100 records of workers silent for a
-- lease (%(lease_ms)s) go.
WITH beat AS (
    INSERT INTO {workers} AS w (queue, id, hostname, pid, started_ms, last_seen_ms, running)
    VALUES (%(queue)s, %(id)s, %(hostname)s, %(pid)s, %(started_ms)s, {now}, %(running)s)
    ON CONFLICT (queue, id) DO UPDATE SET
        last_seen_ms = excluded.last_seen_ms, running = excluded.running
    RETURNING 1
),
silent AS (
    SELECT ctid AS row_id FROM {workers}
    WHERE queue = %(queue)s AND last_seen_ms < {now} - %(lease_ms)s
    LIMIT 100
    FOR UPDATE SKIP LOCKED
)
DELETE FROM {workers} WHERE ctid = ANY(ARRAY(SELECT row_id FROM silent));

-- name: forget_worker
DELETE FROM {workers} WHERE queue = %(queue)s AND id = %(id)s;

-- name: workers
SELECT id, hostname, pid, started_ms, last_seen_ms, running FROM {workers}
WHERE queue = %(queue)s AND last_seen_ms >= {now} - %(lease_ms)s
ORDER BY id;

-- name: count_finished
-- Add a worker's finished attempts to the interval of the clock's now; then up to 100 intervals
-- older than %(history_ms)s go.
WITH counted AS (
    INSERT INTO {throughput} AS t (queue, start_ms, processed, retried, failed)
    VALUES (
        %(queue)s, {now} - {now} %% %(interval_ms)s, %(processed)s, %(retried)s, %(failed)s
    )
    ON CONFLICT (queue, start_ms) DO UPDATE SET
        processed = t.processed + excluded.processed,
        retried = t.retried + excluded.retried,
        failed = t.failed + excluded.failed
    RETURNING 1
),
old AS (
    SELECT ctid AS row_id FROM {throughput}
    WHERE queue = %(queue)s AND start_ms < {now} - %(history_ms)s
    LIMIT 100
    FOR UPDATE SKIP LOCKED
)
DELETE FROM {throughput} WHERE ctid = ANY(ARRAY(SELECT row_id FROM old));

-- name: throughput
SELECT start_ms, processed, retried, failed FROM {throughput}
WHERE queue = %(queue)s AND start_ms >= %(since_ms)s
ORDER BY start_ms;

-- corequeue PostgreSQL schema, version 6: kept results, progress, cancelling a running job.
--
-- A job dispatched with `keep_result` (or on a queue with `keep_results`) is not deleted when
-- acked: it moves to state 4 (completed) with its listeners' encoded return value in `result`,
-- and `due_ms` says when workers prune it. Nullable columns without defaults: adding them
-- rewrites nothing, and a worker of the previous release still acks by deleting.

ALTER TABLE {schema}.jobs ADD COLUMN keep_result_ms bigint, ADD COLUMN result bytea;

-- A running job's progress, stored by its holder's lease renewals; and the token of the
-- reservation a `cancel()` asked to stop (its holder learns of it at its next renewal; a later
-- reservation of the same id has another token, so an old request never touches it).
ALTER TABLE {schema}.jobs ADD COLUMN progress double precision,
    ADD COLUMN progress_message text, ADD COLUMN cancel_token text;

-- State 4 joins the states the CHECK of version 1 allows (its name is PostgreSQL's default).
ALTER TABLE {schema}.jobs DROP CONSTRAINT jobs_state_check,
    ADD CONSTRAINT jobs_state_check CHECK (state BETWEEN 0 AND 4);

-- prune: the oldest finished rows of a queue (completed by expiry, failed and timeout by the
-- time they were parked) are the first entries of this index.
CREATE INDEX jobs_finished ON {schema}.jobs (queue, due_ms) WHERE state >= 2;

-- Worker heartbeats: one row per consumer run of a queue, written every renewal period; a row
-- not written for a lease counts as a worker gone, and beats delete such rows.
CREATE TABLE {schema}.workers (
    queue text NOT NULL,
    id text NOT NULL,
    hostname text NOT NULL,
    pid integer NOT NULL,
    started_ms bigint NOT NULL,
    last_seen_ms bigint NOT NULL,
    running integer NOT NULL,
    PRIMARY KEY (queue, id)
);

-- Fleet-wide throughput: attempts finished by every worker of a queue, per 30-second interval
-- (start_ms aligned to the epoch), kept for a day. Workers add their counts once per renewal
-- period; the dashboard reads them wherever it runs.
CREATE TABLE {schema}.throughput (
    queue text NOT NULL,
    start_ms bigint NOT NULL,
    processed bigint NOT NULL,
    retried bigint NOT NULL,
    failed bigint NOT NULL,
    PRIMARY KEY (queue, start_ms)
);

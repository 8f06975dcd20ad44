-- corequeue PostgreSQL schema, version 1: one table holds every named queue of the schema.
--
-- Applied by corequeue.drivers.postgres.migrations inside one transaction, under an advisory
-- lock, with {schema} replaced by the quoted schema name. Never edit a released migration:
-- add the next numbered file instead.

CREATE TABLE {schema}.jobs (
    queue text NOT NULL,
    id text NOT NULL,
    -- Grows with every insert: breaks ties between equal due times, so waiting is FIFO.
    seq bigint GENERATED ALWAYS AS IDENTITY,
    -- 0 pending (waiting or delayed, split by the clock), 1 reserved, 2 failed, 3 timeout.
    state smallint NOT NULL CHECK (state BETWEEN 0 AND 3),
    -- Milliseconds since the Unix epoch. Pending: when the job may run. Reserved: when the
    -- lease runs out. Failed and timeout: when the job was parked.
    due_ms bigint NOT NULL,
    type text NOT NULL,
    value bytea NOT NULL,
    handle_timeout_ms bigint NOT NULL,
    backoff_ms bigint NOT NULL,
    attempts integer NOT NULL,
    max_attempts integer NOT NULL,
    last_error text,
    PRIMARY KEY (queue, id)
);

-- pop: the first due pending job of a queue is the first entry of this index, however many
-- delayed jobs follow it; the next due time of an idle queue is one probe too.
CREATE INDEX jobs_pending ON {schema}.jobs (queue, due_ms, seq) WHERE state = 0;

-- Lease recovery and the next lease expiry look only at reserved jobs.
CREATE INDEX jobs_reserved ON {schema}.jobs (queue, due_ms) WHERE state = 1;

-- info, reload and flush of the failed and timeout channels.
CREATE INDEX jobs_parked ON {schema}.jobs (queue, state) WHERE state >= 2;

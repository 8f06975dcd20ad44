-- corequeue PostgreSQL schema, version 5: flow control (priorities, groups, pause).
--
-- Adding columns with a constant default rewrites nothing (PostgreSQL 11+): stored jobs read as
-- priority 0 with no group. Pops walk the new index: highest priority first, then due order;
-- with every job at priority 0 it is the old pending index's order.

ALTER TABLE {schema}.jobs ADD COLUMN priority smallint NOT NULL DEFAULT 0;
ALTER TABLE {schema}.jobs ADD COLUMN job_group text;

CREATE INDEX jobs_ready ON {schema}.jobs (queue, priority DESC, due_ms, seq) WHERE state = 0;

-- One row per queue that was ever paused: the flag pops read in their statement.
CREATE TABLE {schema}.queues (
    queue text PRIMARY KEY,
    paused boolean NOT NULL DEFAULT false
);

-- Each rate scope's next allowed start, in microseconds on the store's clock: '' for the
-- queue, 'g:<group>' per group. Limited pops read and move them under the queue's row lock.
CREATE TABLE {schema}.rates (
    queue text NOT NULL,
    scope text NOT NULL,
    next_start_us bigint NOT NULL,
    PRIMARY KEY (queue, scope)
);

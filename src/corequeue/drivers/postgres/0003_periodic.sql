-- corequeue PostgreSQL schema, version 3: periodic jobs.
--
-- One row per periodic schedule of a queue: the last slot whose job was enqueued, in
-- milliseconds since the Unix epoch. The driver advances it and pushes that slot's job in one
-- statement, only to a later slot, so each slot's job is enqueued exactly once however many
-- workers tick the schedule. A new table: the jobs already stored are not touched.

CREATE TABLE {schema}.periodic (
    queue text NOT NULL,
    name text NOT NULL,
    last_slot_ms bigint NOT NULL,
    PRIMARY KEY (queue, name)
);

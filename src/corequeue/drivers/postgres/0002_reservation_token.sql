-- corequeue PostgreSQL schema, version 2: fenced settlement.
--
-- Each pop stores a fresh token in the rows it reserves and hands it out with the jobs; ack,
-- fail, retry, release and renew act only while the row still holds the caller's token, so a
-- worker whose lease ran out can no longer touch a job recovered or re-popped since.
--
-- Adding a nullable column without a default rewrites nothing: the jobs already stored keep
-- their rows. Jobs reserved before the upgrade have no token; no worker of this release can
-- settle them, so they come back when their lease runs out, like any abandoned job.

ALTER TABLE {schema}.jobs ADD COLUMN token text;

-- No CHECK ties the token to the reserved state: a worker of the previous release, still
-- running during a rolling upgrade, recovers expired leases without clearing tokens, and such a
-- constraint would make its every pop fail. A token left on a pending row settles nothing:
-- every fenced statement also requires state = 1, and the next pop writes a fresh token.

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

-- Only a reserved row holds a token: every move out of reserved clears it. Every row has a NULL
-- token when this runs, so NOT VALID skips a scan of the table that could only succeed.
ALTER TABLE {schema}.jobs
    ADD CONSTRAINT jobs_token_only_when_reserved CHECK (state = 1 OR token IS NULL) NOT VALID;

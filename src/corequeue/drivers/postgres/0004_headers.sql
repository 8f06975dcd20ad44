-- corequeue PostgreSQL schema, version 4: job headers.
--
-- Text metadata set by middleware at dispatch (a trace context, a request id), a JSON object
-- of strings; NULL for a job without headers. A nullable column without a default rewrites
-- nothing: the jobs already stored keep their rows and read as having no headers. Statements
-- of the previous release name the columns they change, so its workers leave headers alone.

ALTER TABLE {schema}.jobs ADD COLUMN headers jsonb;

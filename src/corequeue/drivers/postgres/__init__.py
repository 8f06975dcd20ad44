"""The PostgreSQL driver: `PostgresDriver`, its versioned schema and transactional enqueue.

Needs the `postgres` extra (psycopg 3 and psycopg-pool); see docs/postgres.md.
"""

from corequeue.drivers.postgres.driver import PostgresDriver

__all__ = ["PostgresDriver"]

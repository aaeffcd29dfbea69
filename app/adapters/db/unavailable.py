"""The errors that mean "the database did not answer" (down, restarting, connections dropped, pool
exhausted), as opposed to a bug: the API answers them with 503 and Retry-After, not 500."""

from __future__ import annotations

import psycopg
import sqlalchemy.exc

# psycopg_pool.PoolTimeout is a psycopg.OperationalError.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.TimeoutError,
)

"""A throwaway PostgreSQL database for a Prefect server: created, named, dropped.

What belongs here: making one database on a PostgreSQL cluster from an administrator's
URL (``postgresql://postgres@127.0.0.1:5432/postgres``, trust auth on the project's
machines), giving it back as the URL Prefect's server takes
(``PREFECT_API_DATABASE_CONNECTION_URL``, ``postgresql+asyncpg://...``), and dropping it
afterwards even while a server is still connected. The test suite makes one per module,
the benchmarks one per run. A production database is made once by the operator
(docs/operations.md), not here.
"""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit, urlunsplit

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CONNECT_TIMEOUT_SECONDS = 10


def execute(admin_url: str, statement: str) -> None:
    """Run one statement as the administrator (asyncpg, Prefect's own PostgreSQL driver)."""
    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(admin_url, timeout=CONNECT_TIMEOUT_SECONDS)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


def prefect_database_url(admin_url: str, database: str) -> str:
    """The URL Prefect's server takes for ``database`` on the administrator's cluster."""
    netloc = urlsplit(admin_url).netloc
    return urlunsplit(("postgresql+asyncpg", netloc, f"/{database}", "", ""))


def create_database(admin_url: str, prefix: str = "vetreport") -> str:
    """Create a database with a fresh name and return that name.

    Raises OSError (no cluster answers) or ``asyncpg.PostgresError`` (refused).
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    execute(admin_url, f'CREATE DATABASE "{name}"')
    return name


def drop_database(admin_url: str, name: str) -> None:
    """Drop the database, closing whatever connections a server still holds to it."""
    execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

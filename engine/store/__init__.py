"""Where runs live: the ``RunStore`` interface (``store.base``) and its implementations (``store.file``, and
``store.postgres`` for a team sharing one database).

``default_store`` is the one place that chooses the store a command uses.
"""

from __future__ import annotations

import os

from engine.errors import InputError
from engine.store.base import RunLog as RunLog
from engine.store.base import RunStore as RunStore
from engine.store.base import RunSummary as RunSummary
from engine.store.file import FileStore as FileStore
from engine.store.file import home as home
from engine.store.file import private_dir as private_dir

STORE_ENV = "BREAKGLASS_STORE"  # set by `--store URL` too


def default_store() -> RunStore:
    """The store commands use: ``BREAKGLASS_STORE`` when set (a PostgreSQL URL), else the file store under
    ``BREAKGLASS_HOME``."""
    url = os.environ.get(STORE_ENV, "").strip()
    if not url:
        return FileStore()
    return open_store(url)


def open_store(url: str, check_schema: bool = True) -> RunStore:
    """The store a URL names; psycopg is imported only here, when a database store is asked for."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise InputError(f"{STORE_ENV} / --store takes a postgresql://user@host:port/database URL, not "
                         f"'{url.split(':', 1)[0]}:...'; leave it unset for the file store under BREAKGLASS_HOME")
    try:
        from engine.store.postgres import PostgresStore
    except ImportError:
        raise InputError("a PostgreSQL store needs psycopg: pip install 'breakglass[postgres]'") from None
    return PostgresStore(url, check_schema=check_schema)

"""Where runs live: the ``RunStore`` interface (``store.base``) and its implementations (``store.file``).

``default_store`` is the one place that chooses the store a command uses.
"""

from __future__ import annotations

from breakglass.engine.store.base import RunLog as RunLog
from breakglass.engine.store.base import RunStore as RunStore
from breakglass.engine.store.base import RunSummary as RunSummary
from breakglass.engine.store.file import FileStore as FileStore
from breakglass.engine.store.file import home as home
from breakglass.engine.store.file import private_dir as private_dir


def default_store() -> RunStore:
    """The store commands use: the file store under ``BREAKGLASS_HOME``."""
    return FileStore()

"""``breakglass drill`` and ``breakglass report``: registered on the main app when imported."""

from __future__ import annotations

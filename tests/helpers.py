"""Small helpers shared by tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def dump_database(path: Path) -> str:
    """Every table's rows as SQL text: equal dumps mean equal stored state."""
    connection = sqlite3.connect(path)
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()

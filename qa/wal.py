"""Switching an SQLite file to WAL when several processes may open it at once.

The switch needs the file to itself, and SQLite does not call its busy handler for it: processes
opening a new question log, conversation store or embedding cache together get "database is
locked" (seen in test_several_processes_share_the_file_without_loss).  So it is retried for a
few seconds, the way a busy timeout would have waited.
"""

from __future__ import annotations

import sqlite3
import time


def enable_wal(conn: sqlite3.Connection, tries: int = 100) -> None:
    for i in range(tries):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or i == tries - 1:
                raise
            time.sleep(0.05 + 0.01 * i)

"""WAL is switched on even while another process holds the file (a second server starting)."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from qa.wal import enable_wal


def _locked_db(tmp_path):
    path = tmp_path / "log.sqlite"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    return path, holder


def test_wal_waits_for_a_lock_that_is_released(tmp_path):
    path, holder = _locked_db(tmp_path)
    threading.Timer(0.3, holder.rollback).start()
    conn = sqlite3.connect(path, timeout=0.05, isolation_level=None, check_same_thread=False)
    enable_wal(conn)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_lock_that_is_never_released_is_still_an_error(tmp_path):
    path, holder = _locked_db(tmp_path)
    conn = sqlite3.connect(path, timeout=0.01, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        enable_wal(conn, tries=3)
    holder.rollback()

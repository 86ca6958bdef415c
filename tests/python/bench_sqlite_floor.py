"""The floor of a synced SQLite create: a bare `sqlite3` loop, no AIMM.

200 inserts of 256 KiB of random bytes into the Python backend's table,
each its own transaction, in three ways: WAL with `synchronous=FULL` on a
fresh file (the WAL grows), WAL on a file whose WAL has been written once
before (it is overwritten instead of grown), and `journal_mode=delete`
with `synchronous=FULL` (the stock backend's way). Prints the seconds of
each, three rounds. Usage: python tests/python/bench_sqlite_floor.py [DIR]
"""

import os
import sqlite3
import sys
import tempfile
import time

COUNT = 200
SIZE = 256 * 1024
TABLE = ("CREATE TABLE models (id INTEGER PRIMARY KEY AUTOINCREMENT, "
         "type TEXT NOT NULL, instance BLOB)")
INSERT = "INSERT INTO models (type, instance) VALUES (?, ?)"


def run(directory, blobs, journal_mode, prewarm):
    path = os.path.join(directory, "floor.db")
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA journal_mode={journal_mode}")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute(TABLE)
    if prewarm:
        for blob in blobs:
            conn.execute(INSERT, ("t", blob))
        conn.execute("DELETE FROM models")
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    os.sync()
    started = time.perf_counter()
    for blob in blobs:
        conn.execute(INSERT, ("t", blob))
    seconds = time.perf_counter() - started
    conn.close()
    return seconds


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(dir="target")
    blobs = [os.urandom(SIZE) for _ in range(COUNT)]
    print(f"{COUNT} synced inserts of {SIZE // 1024} KiB, seconds:")
    for _ in range(3):
        print(f"wal fresh {run(directory, blobs, 'wal', False):.3f}  "
              f"wal overwritten {run(directory, blobs, 'wal', True):.3f}  "
              f"delete {run(directory, blobs, 'delete', False):.3f}")


if __name__ == "__main__":
    main()

"""The bot's update journal: no question is lost to a crash, none is answered twice.

python-telegram-bot confirms an update to Telegram (the next ``getUpdates`` offset) before
its handlers have finished, so a process killed in between would drop that question. Every
update is written here, durably (SQLite, synchronous commits), as ``getUpdates`` returns
it, before it can be confirmed; it is marked done when its handlers have finished (or it
was refused or ignored). At start-up the updates not marked done are handled again, and
an update Telegram delivers a second time is dropped.

The window left: a process killed after Telegram accepted an answer and before the mark
was committed (a few milliseconds) answers that question again after the restart.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any


class Journal:
    """Received updates and whether each is done, in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a commit survives a power cut
        self._db.execute("CREATE TABLE IF NOT EXISTS updates (update_id INTEGER PRIMARY KEY, "
                         "payload TEXT NOT NULL, received REAL NOT NULL, done REAL)")

    def record(self, updates: list[dict[str, Any]]) -> list[int]:
        """Write ``updates`` (Bot API JSON) that are new; return the ids that were new."""
        new: list[int] = []
        with self._lock:
            self._db.execute("BEGIN")
            for u in updates:
                cur = self._db.execute("INSERT OR IGNORE INTO updates VALUES (?, ?, ?, NULL)",
                                       (int(u["update_id"]), json.dumps(u, ensure_ascii=False),
                                        time.time()))
                if cur.rowcount:
                    new.append(int(u["update_id"]))
            self._db.execute("COMMIT")
        return new

    def done(self, update_id: int) -> None:
        """Mark an update handled."""
        with self._lock:
            self._db.execute("UPDATE updates SET done = ? WHERE update_id = ? AND done IS NULL",
                             (time.time(), update_id))

    def pending(self) -> list[dict[str, Any]]:
        """Updates received but not done, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT payload FROM updates WHERE done IS NULL "
                                    "ORDER BY update_id").fetchall()
        return [json.loads(r[0]) for r in rows]

    def is_done(self, update_id: int) -> bool:
        with self._lock:
            row = self._db.execute("SELECT done FROM updates WHERE update_id = ?",
                                   (update_id,)).fetchone()
        return bool(row and row[0] is not None)

    def prune(self, keep_seconds: float = 7 * 86400) -> None:
        """Forget done updates older than ``keep_seconds``: nothing of a chat stays for long."""
        with self._lock:
            self._db.execute("DELETE FROM updates WHERE done IS NOT NULL AND done < ?",
                             (time.time() - keep_seconds,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def journaling_request(journal: Journal) -> Any:
    """An HTTPX request for ``getUpdates`` that journals every update it receives (before
    python-telegram-bot can confirm it) and drops the ones already journaled."""
    from telegram.request import HTTPXRequest

    class JournalingRequest(HTTPXRequest):
        async def do_request(self, url: str, method: str, *args: Any, **kwargs: Any
                             ) -> tuple[int, bytes]:
            code, payload = await super().do_request(url, method, *args, **kwargs)
            if code != 200 or not url.endswith("/getUpdates"):
                return code, payload
            try:
                data = json.loads(payload)
                updates = data["result"]
            except (ValueError, KeyError, TypeError):
                return code, payload  # python-telegram-bot reports what it cannot parse
            new = set(journal.record(updates))
            data["result"] = [u for u in updates if int(u["update_id"]) in new]
            return code, json.dumps(data).encode()

    return JournalingRequest(connection_pool_size=1)

"""A crash journal for generation replies: nothing paid for is lost to a kill -9.

The engine appends each reply to a journal file the moment it arrives (one JSON line, one
write(): from then on a kill -9 cannot lose it, the page cache outlives the process) and folds the
replies into DuckDB in batches (a DuckDB transaction costs
milliseconds; a line costs microseconds). A run's journal is a series of segment files under
`<store file>.journal/`: a batch fold starts a new segment, writes the closed segment's rows to
the store, then deletes it. A process killed at any moment leaves at most the unfolded segments
behind; `recover` folds them (the engine calls it before it looks anything up), so a re-run
re-sends only what was in flight at the kill. Folding is idempotent (rows are keyed by cache key,
written with INSERT OR REPLACE), so a segment folded twice (killed between the store's commit and
the delete) does no harm. In-memory stores keep no journal (nothing of theirs outlives the process).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import generations

if TYPE_CHECKING:
    from core.store import Store

# Lines also reach the disk, not only the page cache (power loss, not just kill -9): a syncer thread
# fdatasyncs what was written, a few milliseconds behind. Never on the event loop: an fsync there
# (milliseconds each, one per reply) held the next replies unread in their sockets, where a kill
# lost them although they had arrived.
FSYNC = True
_TIMESTAMPS = {c for c, t in generations.COLUMNS if t == "TIMESTAMP"}
_NAMES = {c for c, _ in generations.COLUMNS}

# Segments being written by runs of this process: never folded (or deleted) by another run's recover.
_LIVE: set[str] = set()
_LIVE_LOCK = threading.Lock()
_RECOVER_LOCK = threading.Lock()


def journal_dir(store: Store) -> Path | None:
    return None if store.path == ":memory:" else Path(store.path + ".journal")


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot journal {type(value).__name__}")


def _decode(line: bytes) -> dict[str, Any] | None:
    """One journal line back to a generations row; None for a torn or foreign line."""
    try:
        row = json.loads(line)
    except ValueError:
        return None  # the last line of a process killed mid-write: that reply was in flight
    if not isinstance(row, dict) or set(row) != _NAMES:
        return None
    for c in _TIMESTAMPS:
        if isinstance(row[c], str):
            try:
                row[c] = datetime.fromisoformat(row[c])
            except ValueError:
                return None
    return row


class Journal:
    """One engine run's journal. `append` from the event loop; `rotate` + `done` around a fold."""

    def __init__(self, store: Store):
        self.dir = journal_dir(store)
        self.run = uuid.uuid4().hex[:12]
        self.seq = 0
        self.lock = threading.Lock()
        self.fd: int | None = None
        self.path: Path | None = None
        self.lines = 0  # in the open segment
        self._dirty = threading.Event()  # written, not yet synced
        self._closed = False
        self._syncer: threading.Thread | None = None

    def _open(self) -> None:
        """The next segment, made on the first line it gets (a cached run writes no file)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.seq += 1
        self.path = self.dir / f"{self.run}-{self.seq:06d}.jsonl"
        with _LIVE_LOCK:
            _LIVE.add(str(self.path))
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.lines = 0

    def append(self, row: dict[str, Any]) -> None:
        """Write one reply as one line, now (ensure_ascii: any text, lone surrogates too, is one
        valid line)."""
        if self.dir is None:
            return
        data = (json.dumps(row, default=_encode, ensure_ascii=True, separators=(",", ":")) + "\n").encode()
        with self.lock:
            if self.fd is None:
                self._open()
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]
            self.lines += 1
            if FSYNC:
                self._dirty.set()
                if self._syncer is None:
                    self._syncer = threading.Thread(target=self._sync_loop, name="journal-sync", daemon=True)
                    self._syncer.start()

    def _sync_loop(self) -> None:
        while True:
            self._dirty.wait()
            self._dirty.clear()
            with self.lock:
                if self._closed:
                    return
                try:
                    fd = os.dup(self.fd) if self.fd is not None else None  # rotate may close ours meanwhile
                except OSError:
                    continue  # closed under us (a test's dead writer): nothing left to sync
            if fd is not None:
                try:
                    os.fdatasync(fd)
                finally:
                    os.close(fd)

    def rotate(self) -> Path | None:
        """Close the open segment (None when it holds nothing) and start the next one. Call it in
        the same step that takes the rows to fold, so the segment holds exactly those rows."""
        with self.lock:
            if self.fd is None or not self.lines:
                return None
            old = self.path
            os.close(self.fd)
            self.fd = None  # the next line opens the next segment
        return old

    def done(self, segment: Path | None, folded: bool = True) -> None:
        """folded: the segment's rows are in the store, drop it. Not folded (the store write
        failed): keep it for `recover`, which may now take it."""
        if segment is None:
            return
        if folded:
            segment.unlink(missing_ok=True)
        with _LIVE_LOCK:
            _LIVE.discard(str(segment))

    def close(self) -> None:
        """End of the run. An empty last segment goes; one with rows stays for `recover` (the run
        failed before folding it)."""
        with self.lock:
            self._closed = True
            self._dirty.set()  # the syncer ends
            if self.fd is None:
                return
            if FSYNC and self.lines:
                os.fdatasync(self.fd)  # rows a failed run could not fold wait on disk for `recover`
            os.close(self.fd)
            self.fd = None
            path, empty = self.path, not self.lines
        if empty:
            path.unlink(missing_ok=True)
        with _LIVE_LOCK:
            _LIVE.discard(str(path))


def leftovers(store: Store) -> list[Path]:
    """Segments no run of this process is writing: left by a process that died, oldest first."""
    d = journal_dir(store)
    if d is None or not d.is_dir():
        return []
    with _LIVE_LOCK:
        live = set(_LIVE)
    found = [p for p in d.glob("*.jsonl") if str(p) not in live]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name))


def recover(store: Store) -> int:
    """Fold every left-behind segment into the store (oldest first); returns the rows folded."""
    n = 0
    with _RECOVER_LOCK:
        for segment in leftovers(store):
            try:
                data = segment.read_bytes()
            except FileNotFoundError:
                continue
            rows = [r for r in map(_decode, data.splitlines()) if r is not None]
            # One statement may not write a key twice: the latest line per cache key wins.
            latest = list({r["cache_key"]: r for r in rows}.values())
            if latest:
                generations.record(store, latest)
            segment.unlink(missing_ok=True)
            n += len(latest)
    return n

"""Who holds the store: the owner's sidecar `<db>.owner.json`, and what a second process says.

DuckDB's lock error names a PID and an executable (`python3.11`), which cannot tell the dashboard
from a CLI run or say for how long. So the process that opens the file read-write writes a small
sidecar (pid, its command line, when, a random token) and removes it on close. A sidecar is trusted
only while its pid is alive with the same command line (a pid reused by another program does not
match); a stale one (the owner was killed) is overwritten by the next owner. Without a valid
sidecar the holder comes from DuckDB's message, then from /proc/locks.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_LOCK_PID = re.compile(r"PID (\d+)")


def sidecar(db: str | Path) -> Path:
    return Path(str(db) + ".owner.json")


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0")[:-1]] or None


def claim(db: str | Path) -> str | None:
    """Write this process's sidecar; returns its token (None when it could not be written: the
    store still works, a second process just learns less)."""
    token = secrets.token_hex(8)
    info = {"pid": os.getpid(), "argv": _cmdline(os.getpid()) or [sys.executable, *sys.argv],
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"), "token": token}
    path = sidecar(db)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        return None
    return token


def release(db: str | Path, token: str | None) -> None:
    """Remove the sidecar if it is still ours (never another owner's)."""
    if token is not None and (_read(db) or {}).get("token") == token:
        sidecar(db).unlink(missing_ok=True)


def _read(db: str | Path) -> dict[str, Any] | None:
    try:
        info = json.loads(sidecar(db).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(info, dict) and isinstance(info.get("pid"), int) and isinstance(info.get("argv"), list)
    return info if ok else None


def valid_owner(db: str | Path) -> dict[str, Any] | None:
    """The sidecar, if the process it names is alive and is still that program."""
    info = _read(db)
    if info is None or _cmdline(info["pid"]) != info["argv"]:
        return None
    return info


def _locks_pid(db: str | Path) -> int | None:
    """The pid holding a POSIX lock on the file, from /proc/locks (Linux)."""
    try:
        inode = os.stat(db).st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        f = line.split()
        if len(f) > 5 and f[1] == "POSIX" and f[5].rsplit(":", 1)[-1] == str(inode) and f[4].isdigit():
            return int(f[4])
    return None


def kind(argv: list[str]) -> str:
    """The dashboard, a CLI run, or some other program."""
    if any(Path(a).name.startswith("streamlit") for a in argv[:3]) or "streamlit" in argv[:4]:
        return "the dashboard (streamlit)"
    if any(argv[i:i + 2] == ["-m", "core"] for i in range(len(argv))):
        return "a CLI run"
    return "another program"


def _ago(started: str | None) -> str | None:
    try:
        then = datetime.fromisoformat(started or "")
    except ValueError:
        return None
    s = max(0, int((datetime.now(UTC) - then).total_seconds()))
    return f"{s} s" if s < 120 else f"{s // 60} min" if s < 7200 else f"{s // 3600} h {s % 3600 // 60} min"


def _short(argv: list[str], limit: int = 120) -> str:
    args = list(argv)
    if args and Path(args[0]).name.startswith("python"):
        args[0] = "python"
    line = " ".join(" ".join(args).split())
    return line if len(line) <= limit else line[:limit] + "…"


def holder(db: str | Path, lock_message: str = "") -> dict[str, Any]:
    """What is known of the process holding the file: pid, argv, kind, held (how long) where known."""
    info = valid_owner(db)
    if info is not None:
        return {"pid": info["pid"], "argv": info["argv"], "kind": kind(info["argv"]),
                "held": _ago(info.get("started_at"))}
    m = _LOCK_PID.search(lock_message)
    pid = int(m.group(1)) if m else _locks_pid(db)
    argv = _cmdline(pid) if pid else None
    return {"pid": pid, "argv": argv, "kind": kind(argv) if argv else "another process", "held": None}


def describe(h: dict[str, Any]) -> str:
    """'the dashboard (streamlit), PID 12, open for 3 min: streamlit run app.py'."""
    parts = [h["kind"]]
    if h.get("pid"):
        parts.append(f"PID {h['pid']}")
    if h.get("held"):
        parts.append(f"open for {h['held']}")
    text = ", ".join(parts)
    return f"{text}: {_short(h['argv'])}" if h.get("argv") else text

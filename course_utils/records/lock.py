"""One writer per output folder: the run lock.

Two runs appending to one folder would interleave their records, so a run holds the folder's
``.run.lock`` (an ``fcntl.flock``) while it writes. The kernel drops the lock when the holder
dies, so a crashed run never blocks the folder; the holder's host, PID and start time are
written into the file only to name it in the error a second run gets.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from course_utils.records.jsonfiles import dumps_json

LOCK_FILE = ".run.lock"


class FolderInUseError(ValueError):
    """Another live run writes into this output folder; two writers would interleave records."""

#: Locks this process holds, by lock-file path: a notebook re-running a cell takes its own over.
_HELD: dict[Path, RunLock] = {}


@dataclass(eq=False)
class RunLock:
    """The right to write into an output folder, held until :meth:`release` or process exit.

    ``fcntl.flock`` is released by the kernel when the holder dies, so a crashed run never
    blocks the folder; the holder's host, PID and start time are written into the file only
    to name it in the error a second run gets.
    """

    path: Path
    fd: int | None
    holder: dict[str, Any]
    flocked: bool = True

    @property
    def held(self) -> bool:
        return self.fd is not None and _HELD.get(self.path) is self

    def release(self) -> None:
        """Give the folder back (idempotent; a lock taken over in this process is left alone)."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            if _HELD.get(self.path) is self:
                del _HELD[self.path]
                os.ftruncate(fd, 0)  # an empty file tells the next run nobody left it behind
        finally:
            os.close(fd)  # closing the last descriptor drops the flock


def _close_held_in_child() -> None:
    """A forked child (e.g. a Parsl process) must not keep the folder locked after its parent dies."""
    for lock in _HELD.values():
        if lock.fd is not None:
            try:
                os.close(lock.fd)  # close, never LOCK_UN: that would unlock the parent too
            except OSError:
                pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode("utf-8", "replace")
        holder = json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: Mapping[str, Any]) -> str:
    return (f"host {holder.get('host', '?')}, PID {holder.get('pid', '?')}, "
            f"started {holder.get('started', '?')}")


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, run by someone else
    except (TypeError, ValueError, OverflowError, OSError):
        return False
    return True


def acquire_run_lock(out_dir: str | os.PathLike, lock_name: str = LOCK_FILE) -> RunLock:
    """Make this process the only writer of ``out_dir`` (created if needed), or fail at once.

    ``lock_name`` locks one file's writers instead of the folder's (a ground-truth build file).

    Raises :class:`FolderInUseError` naming the live run that holds the folder. A lock file
    left by a dead run is taken over with a note on stderr; calling this again in the same
    process (a notebook cell run twice) hands the lock to the new caller.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = (folder / lock_name).resolve()
    me = {"host": socket.gethostname(), "pid": os.getpid(),
          "started": datetime.now().astimezone().isoformat(timespec="seconds")}
    previous = _HELD.get(path)
    if previous is not None and previous.fd is not None:
        lock = RunLock(path, previous.fd, me, previous.flocked)
        previous.fd = None  # the old handle's release() must not drop the new owner's lock
        _HELD[path] = lock
        _write_holder(lock.fd, me)
        return lock
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        flocked = _flock(fd, folder)
        holder = _read_holder(fd)
        same_process = holder.get("host") == me["host"] and holder.get("pid") == me["pid"]
        if not flocked and holder and not same_process:
            if holder.get("host") != me["host"]:
                raise FolderInUseError(
                    f"{folder} may be in use by another run ({_describe(holder)}) and this "
                    f"filesystem cannot lock files; if that run is over, delete {path}")
            if _pid_alive(holder.get("pid")):
                raise FolderInUseError(_in_use(folder, holder))
        if holder and not same_process:
            print(f"note: {folder}: took over the lock of a run that is no longer running "
                  f"({_describe(holder)})", file=sys.stderr)
        _write_holder(fd, me)
    except BaseException:
        os.close(fd)
        raise
    lock = RunLock(path, fd, me, flocked)
    _HELD[path] = lock
    return lock


def _in_use(folder: Path, holder: Mapping[str, Any]) -> str:
    return (f"{folder} is in use by another run ({_describe(holder)}); wait for it to finish "
            "or use another --out folder")


def _flock(fd: int, folder: Path) -> bool:
    """True once the flock is held; False if the filesystem cannot lock (caller checks the PID)
    or this very process already holds it through another descriptor."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            holder = _read_holder(fd)
            if holder.get("host") == socket.gethostname() and holder.get("pid") == os.getpid():
                return False  # this process holds it through a lost handle (a reloaded module)
            raise FolderInUseError(_in_use(folder, holder)) from None
        return False
    return True


def _write_holder(fd: int, holder: Mapping[str, Any]) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (dumps_json(dict(holder)) + "\n").encode())
    os.fsync(fd)

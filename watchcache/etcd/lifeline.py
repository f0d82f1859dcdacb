"""What ties a private etcd's life to its owner's, whatever ends the owner (SIGKILL included).

Two small programs, run by path with ``python -I -S`` (so this file imports only the standard library):

``exec PARENT PROGRAM ARGS...``
    The shim every etcd member is started through: it asks the kernel to SIGKILL it when the thread
    that forked it exits (``prctl(PR_SET_PDEATHSIG)``, Linux), checks that ``PARENT`` is still its
    parent (else the owner died before the request took effect), and execs etcd, which keeps the
    shim's pid and the death signal. The forking thread is :mod:`.member`'s spawner thread, which lives
    as long as the owning process.

``janitor ROOT``
    One per private etcd's temp dir (:class:`.process.EtcdGroup`), in its own session so that a
    terminal's signals never reach it, ignoring SIGINT, SIGHUP and SIGTERM. It reads its stdin, a pipe
    whose write end only the owner holds, until end of file: the owner closed it after stopping etcd and
    removing the dir itself, or the owner is gone, however it ended. Then it kills every process still
    running on a data dir under ``ROOT`` (an etcd, or a shim about to exec one) and removes ``ROOT``.
    A SIGKILLed owner cannot clean up after itself; its janitor does.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

__all__ = ["SCRIPT", "has_exited", "janitor_command", "processes_under", "shim_command"]

SCRIPT = str(Path(__file__).resolve())
"""This file, run by the interpreter as the shim and the janitor."""

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_KILL_DEADLINE = 10.0
_POLL_INTERVAL = 0.02


def shim_command(command: Sequence[str]) -> list[str]:
    """``command`` run through the death-signal shim, when this system has one (Linux, a known
    interpreter); else ``command`` itself."""
    if not sys.platform.startswith("linux") or not sys.executable:
        return list(command)
    return [sys.executable, "-I", "-S", SCRIPT, "exec", str(os.getpid()), *command]


def janitor_command(root: str) -> list[str] | None:
    """The janitor of ``root`` (stdin: the lifeline's read end), or ``None`` without an interpreter
    to run it."""
    if not sys.executable:
        return None
    return [sys.executable, "-I", "-S", SCRIPT, "janitor", root]


def processes_under(root: str) -> list[int]:
    """Pids of the processes whose command line has a ``--data-dir`` under ``root`` (an exited one
    waiting to be reaped has no command line any more); empty where there is no ``/proc``."""
    wanted = f"--data-dir={root.rstrip('/')}/".encode()
    pids = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:  # gone meanwhile, or not ours to read
                continue
            if any(arg.startswith(wanted) for arg in args):
                pids.append(int(entry.name))
    return pids


def _exec_with_death_signal(parent: int, command: list[str]) -> NoReturn:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        print(f"watchcache etcd shim: prctl(PR_SET_PDEATHSIG): {os.strerror(err)}", file=sys.stderr)
        sys.exit(126)
    if os.getppid() != parent:
        # The owner died between fork and prctl: no signal will ever come, so do not start.
        sys.exit(125)
    os.execv(command[0], command)


def _janitor(root: str) -> None:
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        while os.read(0, 4096):
            pass
    # The owner is gone or done. etcd processes get their death signal from the kernel; any left (a
    # shim between fork and exec when its owner died) are killed here, before their files go.
    # One being killed loses its command line a moment before its files and sockets close, so those
    # seen are followed by pid until they have finished exiting.
    deadline = time.monotonic() + _KILL_DEADLINE
    seen: set[int] = set()
    while time.monotonic() < deadline:
        running = processes_under(root)
        seen = {pid for pid in seen.union(running) if not has_exited(pid)}
        if not seen:
            break
        for pid in running:  # not the others, whose pid could be another's by now
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(_POLL_INTERVAL)
    shutil.rmtree(root, ignore_errors=True)


def has_exited(pid: int) -> bool:
    """Whether process ``pid`` has finished exiting, so that its files and sockets are closed: it is
    gone, or every thread of it is. A killed process shows as a zombie as soon as its first thread has
    exited, while its other threads (etcd has many) still hold its files; and it loses its command
    line even before that."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:  # gone (or no /proc)
        return True
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):  # this thread is gone
            continue
        if state not in (b"Z", b"X"):
            return False
    return True


def _main(argv: list[str]) -> None:
    if len(argv) >= 3 and argv[0] == "exec":
        _exec_with_death_signal(int(argv[1]), argv[2:])
    if len(argv) == 2 and argv[0] == "janitor":
        _janitor(argv[1])
        return
    print("usage: lifeline.py exec PARENT PROGRAM [ARGS...] | janitor ROOT", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    _main(sys.argv[1:])

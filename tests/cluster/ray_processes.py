"""The processes of a Ray cluster a test's command started: the command runs in a session of its own, and Ray's
workers stay in it, so a replica or an actor is found by its title and that session (read from /proc)."""

from __future__ import annotations

import os
from pathlib import Path


def session_processes(title: str, command: int) -> list[int]:
    """PIDs whose command line starts with ``title`` (ray::ServeReplica:…, ray::MapWorker…) in ``command``'s session."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            if cmdline.startswith(title) and os.getsid(int(entry.name)) == os.getsid(command):
                pids.append(int(entry.name))
        except OSError:  # gone meanwhile
            continue
    return sorted(pids)

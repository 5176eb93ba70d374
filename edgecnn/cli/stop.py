"""Ctrl-C while a model runs (``edgecnn predict``, ``edgecnn bench``): the run stops, the command says so and exits 130.

Python runs its SIGINT handler between bytecodes only, never inside onnxruntime's run, so a model that never
finishes would ignore Ctrl-C. The signal also wakes a thread here (:func:`signal.set_wakeup_fd`: the C-level handler
writes to a pipe whatever the main thread is doing), which calls the engines' ``stop`` (onnxruntime's
``RunOptions.terminate``, checked between the graph's nodes; OpenVINO's cancel); the run then returns and the
KeyboardInterrupt is raised as usual.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

import click

from edgecnn.errors import EdgeCNNError

__all__ = ["stoppable"]

INTERRUPTED_EXIT = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C ended


@contextlib.contextmanager
def stoppable() -> Iterator[Callable[[Callable[[], None]], None]]:
    """Yield ``add(stop)``: each engine's stop, called on Ctrl-C. A KeyboardInterrupt (or the engine error the
    stopped run raised before it) ends the command with one line and exit 130."""
    stops: list[Callable[[], None]] = []
    interrupted = threading.Event()
    try:
        with _woken_on_sigint(lambda: (interrupted.set(), *(stop() for stop in list(stops)))):
            yield stops.append
    except KeyboardInterrupt:
        _interrupted()
    except EdgeCNNError:
        if interrupted.is_set():  # the stopped run's own error, raised before the KeyboardInterrupt
            _interrupted()
        raise


def _interrupted() -> None:
    click.echo("edgecnn: interrupted", err=True)
    sys.exit(INTERRUPTED_EXIT)


@contextlib.contextmanager
def _woken_on_sigint(on_sigint: Callable[[], object]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield
        return
    read, write = os.pipe()
    os.set_blocking(write, False)  # the signal handler must never block on a full pipe
    previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)

    def watch() -> None:
        while data := os.read(read, 64):  # b"": the write end is closed, the block is over
            if signal.SIGINT in data:
                on_sigint()

    watcher = threading.Thread(target=watch, name="edgecnn-ctrl-c", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        os.close(write)
        watcher.join()
        os.close(read)

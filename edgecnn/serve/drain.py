"""The drain: how the server stops on SIGTERM, SIGINT or SIGHUP without cutting a request it has taken.

1. The Gate answers every request that arrives from now on 503 with ``Connection: close``; the requests already
   begun are answered, their connections then closed.
2. Accepting stops without a reset: closing a listening socket resets the connections the kernel has completed
   but the server has not yet accepted. So first new handshakes are refused (on Linux, a socket filter drops new
   SYNs; the client's retry then meets a closed port: connection refused), the queue is accepted and answered,
   and only then is the socket closed.
3. Each connection is closed once quiet (:meth:`~edgecnn.serve.wire.Connection.quiet`): nothing of a request
   received or waiting in its socket.
4. At the deadline (``--drain-timeout``, counted from the signal) the model calls still running are stopped or
   abandoned (calls.py), the requests left are cancelled (the Gate counts them), the connections closed, and the
   exit status is 1.

A signal's Python handler runs only when the event loop's thread runs Python, and a model call on the event loop
holds it. So :class:`SignalRelay` hears the signal itself, through the wakeup fd that Python's C handler writes
at once, and gives the watchdog (calls.py) the drain's deadline, whatever the loop is doing; the bytes are passed
on to the event loop's own wakeup fd.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from edgecnn.serve.gate import Gate

__all__ = ["drain", "SignalRelay", "DRAIN_SIGNALS"]

DRAIN_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

SETTLE = 0.1  # seconds for handshakes under way to complete once new ones are refused (their ACKs still pass)
_SO_ATTACH_FILTER = 26  # Linux


class _Instruction(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_Instruction))]


# Classic BPF over the TCP header: drop a segment whose flags are SYN without ACK (a new handshake), pass the rest.
_NO_NEW_HANDSHAKES = (_Instruction * 5)(
    _Instruction(0x30, 0, 0, 13),  # ldb [13]: the flags byte
    _Instruction(0x54, 0, 0, 0x12),  # and #(SYN|ACK)
    _Instruction(0x15, 0, 1, 0x02),  # jeq #SYN: drop, else pass
    _Instruction(0x06, 0, 0, 0),  # ret #0: drop
    _Instruction(0x06, 0, 0, 0xFFFFFFFF),  # ret #-1: the whole segment
)


async def drain(
    server: Any, gate: Gate, listener: socket.socket, seconds: float, *, stop_calls: Callable[[], int]
) -> int:
    """Steps 1–4 on uvicorn ``server`` (its listener ``listener``) within ``seconds``; how many model calls were
    abandoned (``stop_calls()``: stops those still running and says how many were, in all)."""
    loop = asyncio.get_running_loop()
    gate.deadline = deadline = loop.time() + seconds
    gate.draining = True
    state = server.server_state
    begun = set(state.tasks)
    for connection in list(state.connections):
        if connection.cycle is not None and not connection.cycle.response_complete:
            connection.cycle.keep_alive = False
    forced = lambda: server.force_exit  # noqa: E731 - a second Ctrl-C
    await _until(lambda: forced() or all(task.done() for task in begun), deadline)
    await _close_listener(server, listener, deadline)
    await _until(lambda: forced() or (_close_quiet(state.connections) and not state.tasks), deadline)
    if not (state.tasks or state.connections):
        return stop_calls()  # the watchdog may have stopped a call that held the loop past the deadline
    abandoned = stop_calls()  # onnxruntime's calls end at once, their requests answered 504
    await _until(lambda: not state.tasks, min(loop.time() + 1.0, deadline + 1.0))
    for task in list(state.tasks):
        task.cancel()
    for connection in list(state.connections):
        connection.transport.close()
    return abandoned


async def _until(done: Callable[[], bool], deadline: float) -> None:
    loop = asyncio.get_running_loop()
    while not done() and loop.time() < deadline:
        await asyncio.sleep(0.01)


async def _close_listener(server: Any, listener: socket.socket, deadline: float) -> None:
    if _refuse_handshakes(listener):
        await asyncio.sleep(SETTLE)
        await _until(lambda: _accept_queue(listener) == 0, deadline)
        await asyncio.sleep(0)  # the loop's accept has handed the last ones to their protocols
    for each in server.servers:
        each.close()
    listener.close()


def _refuse_handshakes(listener: socket.socket) -> bool:
    """Drop new SYNs on ``listener``; False where the kernel has no socket filters (not Linux): there the socket
    closes at once, and a connection completed but not yet accepted may be reset."""
    program = _Program(len(_NO_NEW_HANDSHAKES), _NO_NEW_HANDSHAKES)
    try:
        listener.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, bytes(memoryview(program)))
    except OSError:
        return False
    return True


def _accept_queue(listener: socket.socket) -> int:
    """Connections the kernel has completed and nobody has accepted yet (Linux's tcp_info of a listener)."""
    try:
        info = listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except OSError:
        return 0
    return struct.unpack_from("I", info, 24)[0]  # tcpi_unacked: for a listener, its accept queue


def _close_quiet(connections: set[Any]) -> bool:
    """Close each quiet connection; whether none is left open."""
    for connection in list(connections):
        if connection.quiet():
            connection.transport.close()
    return not connections


class SignalRelay:
    """Call ``heard(time.monotonic())`` from a daemon thread as soon as a drain signal arrives. Start it on the
    event loop's (main) thread once the loop runs: it takes the wakeup fd the loop has set and relays to it."""

    def __init__(self, heard: Callable[[float], None]) -> None:
        self._heard = heard
        self._reader, writer = socket.socketpair()
        writer.setblocking(False)
        self._writer = writer  # kept open as long as the relay
        self._onward = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        threading.Thread(target=self._relay, name="edgecnn-signals", daemon=True).start()

    def _relay(self) -> None:
        while data := self._reader.recv(64):
            if any(number in DRAIN_SIGNALS for number in data):
                self._heard(time.monotonic())
            if self._onward != -1:
                with contextlib.suppress(OSError):  # the loop's own pipe is full or gone: it has woken already
                    os.write(self._onward, data)

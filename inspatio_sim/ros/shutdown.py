"""Stopping ``inspatio_world_node`` on SIGINT / SIGTERM at any point, and ending its process at once.

Two phases (:class:`StopSignals`):

- *starting* (configuration checked, World being built): a signal raises :class:`KeyboardInterrupt` in the main
  thread, so the build is abandoned at the next Python bytecode (a native call that is running finishes first);
- *running* (from just before ``rclpy.init`` on): a signal only records a stop request. The spin loop checks it
  between callbacks, so a tick, a publish or rclpy's own bookkeeping is never cut in half and the node always
  shuts down the same way: executor, node (its DDS participant), context.

A process that is only the node then ends with :func:`end_process`: CPython's own teardown after ``main`` returns
(several full garbage collections over the torch/scipy/rclpy heap, then freeing every module) costs about a
second of CPU; on a 2-core machine with other busy processes it took 3-8 s, which is how a Ctrl-C test once ran
past its 15 s limit.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import NoReturn

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The signals that stop the node (Ctrl-C, ``kill``, ``docker stop``, launch systems)."""


class StopSignals:
    """SIGINT and SIGTERM handlers for the node's lifetime (a context manager; main thread only).

    Outside the main thread Python cannot install signal handlers: nothing is installed and the caller stops the
    node by shutting its rclpy context down. The previous handlers are restored on exit.

    Attributes:
        signum: The first stop signal received, or ``None``.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._running = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        if first and not self._running:  # a second signal never interrupts the unwinding of the first
            raise KeyboardInterrupt(signal.Signals(signum).name)

    def check(self) -> None:
        """Raise :class:`KeyboardInterrupt` if a signal arrived while starting whose interrupt some library code
        swallowed (a broad ``except`` around an import or a native call)."""
        if self.requested and not self._running:
            raise KeyboardInterrupt(self.name)

    def running(self) -> None:
        """Enter the running phase: from now on a signal only sets :attr:`requested`."""
        self._running = True

    @property
    def requested(self) -> bool:
        """Whether a stop signal has arrived."""
        return self.signum is not None

    @property
    def name(self) -> str:
        """``SIGINT``/``SIGTERM`` of the stop request ("no signal" before one arrived)."""
        return "no signal" if self.signum is None else signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by this signal: 128 + signal number (130 for SIGINT)."""
        return 128 + (self.signum if self.signum is not None else signal.SIGINT)


def end_process(code: int) -> NoReturn:
    """End this process now with exit ``code``, skipping the interpreter teardown (see the module docstring).

    Runs what a normal exit runs first (``atexit`` handlers: logging is flushed and closed, temporary files are
    removed), flushes stdout and stderr, then ``os._exit``. Call it only where the process has released everything
    outside itself (the node's DDS participant) and nothing is left for the caller: a process entry point.
    """
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed or broken: nothing more can be written anyway
            stream.flush()
    os._exit(code)

"""Stop signals of the node process (phases of StopSignals) and the prompt process end (end_process)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from inspatio_sim.ros.shutdown import StopSignals


def _deliver(sig: int) -> None:
    """Send ``sig`` to this process and give the main thread time to run its Python handler."""
    os.kill(os.getpid(), sig)
    for _ in range(100):  # the handler runs at the next bytecode of the main thread: at the first sleep here
        time.sleep(0.01)


def test_while_starting_the_first_signal_interrupts_and_a_second_one_does_not():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with StopSignals() as stop:
        assert not stop.requested
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            _deliver(signal.SIGTERM)
        _deliver(signal.SIGINT)  # during the unwinding of the first: recorded only, never a second interrupt
        assert stop.requested and stop.name == "SIGTERM" and stop.exit_code == 143
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):  # had library code swallowed the first interrupt
            stop.check()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_once_running_a_signal_only_requests_the_stop():
    before = signal.getsignal(signal.SIGINT)
    with StopSignals() as stop:
        stop.running()
        _deliver(signal.SIGINT)  # no KeyboardInterrupt: the spin loop sees `requested`
        assert stop.requested and stop.name == "SIGINT" and stop.exit_code == 130
        stop.check()  # running: the spin loop ends, nothing is raised
        _deliver(signal.SIGTERM)
        assert stop.name == "SIGINT"
    assert signal.getsignal(signal.SIGINT) is before


_CHILD = """
import atexit, sys
from inspatio_sim.ros.shutdown import end_process

class Teardown:
    def __del__(self):
        print("interpreter teardown ran", flush=True)

kept = Teardown()  # a module global: freed only by the interpreter's teardown
atexit.register(lambda: print("atexit ran", file=sys.stderr))
sys.stdout.write("unflushed output ")
end_process(7)
"""


def test_end_process_runs_atexit_flushes_output_and_skips_the_interpreter_teardown():
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=60)
    assert out.returncode == 7, out.stderr
    assert out.stdout == "unflushed output " and out.stderr == "atexit ran\n", out

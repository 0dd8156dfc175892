"""The program ``mprofxx run`` records: waiting for its exit (or its news that it writes its peak
table), and stopping it when the run is interrupted."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time

from mprofxx._peak_parts import RunLink


def signal_name(number: int) -> str:
    """The name of signal ``number`` (``SIGTERM``), or ``signal N`` for one without a name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


_GROUP_GRACE_SECONDS = 1.0


def _in_our_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == os.getpgrp()
    except OSError:
        return False


def _note_signal(signum: int, frame: object) -> None:
    pass  # while the program is stopped: it already has the first signal


class ProgramWatch:
    """Waits for the program's exit, and for the news that it writes its peak table (then the
    sampler stops: the write is the recorder's memory, not the program's)."""

    def __init__(self, process: subprocess.Popen[bytes], link: RunLink | None,
                 sampler: object) -> None:
        self.process = process
        self.link = link
        self.sampler = sampler
        try:
            self._exit_fd = os.pidfd_open(process.pid)
        except (AttributeError, OSError):
            self._exit_fd = -1  # polled instead

    @property
    def writing(self) -> bool:
        return self.link is not None and self.link.writing

    def wait(self, timeout: float | None) -> bool:
        """Wait until the program exits (True) or ``timeout`` seconds pass (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.process.poll() is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            watched = [] if self._exit_fd < 0 else [self._exit_fd]
            if self.link is not None and not self.link.writing:
                watched.append(self.link.fd)
            step = left if self._exit_fd >= 0 else min(0.05, left if left is not None else 0.05)
            if not watched:
                time.sleep(step if step is not None else 0.05)
                continue
            ready, _, _ = select.select(watched, [], [], step)
            if self.link is not None and self.link.fd in ready:
                self.link.take_news(self.sampler.stop)  # type: ignore[attr-defined]
        return True

    def close(self) -> None:
        if self._exit_fd >= 0:
            os.close(self._exit_fd)
        if self.link is not None:
            self.link.close()


def stop_program(process: subprocess.Popen[bytes], signum: int = signal.SIGINT,
                  watch: ProgramWatch | None = None) -> None:
    """Pass Ctrl-C (or the signal we got) on to the program, then wait, then kill.

    Further signals meanwhile are noted, not acted on; a program writing its peak table is
    waited for until it has finished.
    """
    if process.poll() is not None:
        return
    previous = {sig: signal.signal(sig, _note_signal)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        if signum == signal.SIGINT and watch is not None and _in_our_group(process.pid):
            # Ctrl-C from the terminal (SIGINT to the process group) reached the program too:
            # one more would land in its KeyboardInterrupt's unwinding or in its table's write.
            # It gets a moment to end, or to begin the write, before SIGINT is passed on (for
            # a SIGINT sent to the run alone).
            if watch.wait(_GROUP_GRACE_SECONDS) or (watch.writing and watch.wait(None)):
                process.wait()
                return
        process.send_signal(signum)
        if watch is None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
            process.wait()
            return
        if not watch.wait(5) and not (watch.writing and watch.wait(None)):
            process.kill()
        process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

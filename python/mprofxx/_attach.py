"""``mprofxx attach --peak/--growth``: get into a running CPython process, record, get the result.

The CLI side. :func:`start_inside` refuses in one line (:class:`CliError`) and leaves the target
untouched when it cannot go in: no such process, not CPython, free-threaded, remote debugging
disabled, not permitted to trace it, no lldb (3.11-3.13), our package missing from the target's
environment or at another version. Otherwise it makes a 0700 folder, writes the boot code there
(``_attach_boot``) and has the target run it:

- 3.14+: ``sys.remote_exec`` (PEP 768), called by the target's own interpreter;
- 3.11-3.13: lldb stops the target for well under a second, maps one page, copies a two-line
  snippet there and queues it with ``Py_AddPendingCall(PyRun_SimpleString, page)``, then detaches.
  The interpreter runs it in the main thread at its next safe point with the GIL held, never in
  the middle of malloc or of a bytecode (calling ``PyGILState_Ensure`` on whatever thread the
  debugger stopped could). gdb is not used: gdb 13 cannot call functions in a process on CPUs with
  AMX state ("Couldn't write extended state status").

The target then records on a thread of its own (``_attach_target``) and answers through files in
the folder; :class:`InsideSession` asks it to stop and collects the result.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Optional

from _memxx_shared.errors import CliError

#: How long the target's main thread may take to reach a safe point and start recording.
START_SECONDS = 15.0
#: How long the target may take to write its result once asked.
RESULT_SECONDS = 60.0

_PYTHON_NAME = re.compile(r"(?:^|/)(?:lib)?python(\d+)\.(\d+)(t?)d?(?:\.so[.\d]*|$)")


@dataclass(frozen=True)
class Target:
    """What the CLI learns about a process from /proc before touching it."""

    pid: int
    version: tuple[int, int]
    free_threaded: bool
    executable: str


def inspect(pid: int) -> Target:
    """The process's CPython version from its executable or mapped libpython; CliError if none."""
    try:
        executable = os.readlink(f"/proc/{pid}/exe")
    except FileNotFoundError:
        if os.path.exists(f"/proc/{pid}"):
            raise CliError(f"PID {pid} is not a CPython process (no executable: a kernel thread)"
                           ) from None
        raise CliError(f"no running process with PID {pid}") from None
    except PermissionError:
        raise CliError(f"permission denied: cannot inspect PID {pid} (another user's?)") from None
    names = [executable]
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as maps:
            names += [line.split(None, 5)[5].strip() for line in maps if line.count(" ") >= 5
                      and len(line.split(None, 5)) == 6]
    except OSError as error:
        raise CliError(f"cannot read /proc/{pid}/maps: {error.strerror}") from None
    for name in names:
        found = _PYTHON_NAME.search(name)
        if found:
            major, minor = int(found.group(1)), int(found.group(2))
            return Target(pid, (major, minor), found.group(3) == "t", executable)
    raise CliError(f"PID {pid} is not a CPython process ({executable} maps no libpython)")


def _refuse_unsafe(target: Target) -> None:
    """CliError for targets we never go into: free-threaded, debugging disabled, traced."""
    pid = target.pid
    if target.version < (3, 11):
        raise CliError(f"PID {pid} runs Python {target.version[0]}.{target.version[1]};"
                       " attach needs 3.11 or later")
    if target.free_threaded:
        raise CliError(f"PID {pid} is a free-threaded CPython build (not supported)")
    try:
        with open(f"/proc/{pid}/environ", "rb") as source:
            environment = source.read().split(b"\0")
        with open(f"/proc/{pid}/cmdline", "rb") as source:
            arguments = source.read().split(b"\0")
        with open(f"/proc/{pid}/status", encoding="utf-8") as source:
            status = source.read()
    except PermissionError:
        raise CliError(f"permission denied: cannot read the environment of PID {pid}") from None
    except OSError:
        raise CliError(f"no running process with PID {pid}") from None
    disabled = b"PYTHON_DISABLE_REMOTE_DEBUG="  # any non-empty value disables it
    if any(entry.startswith(disabled) and entry != disabled for entry in environment):
        raise CliError(f"remote debugging is disabled in PID {pid} (PYTHON_DISABLE_REMOTE_DEBUG)")
    for at, argument in enumerate(arguments[:-1]):
        if argument == b"-X" and arguments[at + 1] == b"disable_remote_debug" or \
                argument == b"-Xdisable_remote_debug":
            raise CliError(f"remote debugging is disabled in PID {pid} (-X disable_remote_debug)")
    tracer = re.search(r"^TracerPid:\s*(\d+)", status, re.M)
    if tracer and tracer.group(1) != "0":
        raise CliError(f"PID {pid} is already traced by PID {tracer.group(1)} (a debugger)")
    _check_yama(pid)


def _check_yama(pid: int) -> None:
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope", encoding="ascii") as source:
            scope = int(source.read().strip() or 0)
    except (OSError, ValueError):
        return  # no Yama: the usual same-user-or-root rule, checked before
    if scope == 0 or (scope in (1, 2) and os.geteuid() == 0):
        return
    if scope == 1 and _is_ancestor_of(pid):
        return
    raise CliError(
        f"not permitted to trace PID {pid}: kernel.yama.ptrace_scope is {scope}"
        + (" (run as root, or set it to 0)" if scope < 3 else " (no process may be traced)")
    )


def _is_ancestor_of(pid: int) -> bool:
    me = os.getpid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as source:
                pid = int(source.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if pid == me:
            return True
    return False


def _snippet(boot_path: str) -> str:
    # What the interpreter runs first: the boot file with fresh globals. Nothing may escape: a
    # pending call that fails would raise in whatever the main thread runs next.
    return ("try:\n"
            f"    exec(open({boot_path!r}).read(), {{'__name__': '__mprofxx_attach__'}})\n"
            "except BaseException:\n"
            "    pass\n")


def _enter_with_lldb(target: Target, snippet: str) -> None:
    lldb = shutil.which("lldb")
    if lldb is None:
        raise CliError(f"attaching to Python {target.version[0]}.{target.version[1]} needs lldb,"
                       " which is not installed (Debian: apt-get install lldb)")
    literal = snippet.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    # One expression (each one is compiled while the target stands still). mmap and strcpy take
    # no lock: safe whatever the stopped thread was doing. The page (4 KiB) stays mapped.
    queue = ("expr -- char *page = (char*)mmap(0, 4096, 3, 0x22, -1, 0);"
             f' (void)(char*)strcpy(page, "{literal}");'
             " void *run = (void*)&PyRun_SimpleString;"
             " (int)Py_AddPendingCall((int(*)(void*))run, (void*)page)")
    if len(snippet) >= 4000:
        raise CliError("internal: the attach snippet does not fit in one page")
    commands = [f"process attach --pid {target.pid}", queue, "process detach"]
    argv = [lldb, "--batch", "--no-lldbinit"]
    for command in commands:
        argv += ["-o", command]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                              timeout=60, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise CliError(f"lldb did not finish attaching to PID {target.pid} within 60 s") from None
    output = done.stdout + done.stderr
    if "attach failed" in output:
        reason = re.search(r"attach failed: (.*)", output)
        text = reason.group(1).strip() if reason else "attach failed"
        raise CliError(f"not permitted to trace PID {target.pid}: {text}")
    if not re.search(r"\(int\) \$\d+ = 0\b", output) or "detached" not in output:
        last = [line for line in output.splitlines() if "error" in line.lower()]
        raise CliError(f"lldb could not queue our code in PID {target.pid}: "
                       + (last[-1].strip() if last else "see lldb --batch -p PID"))


def _enter_with_remote_exec(target: Target, script_path: str) -> None:
    code = ("import sys\n"
            "try:\n"
            f"    sys.remote_exec({target.pid}, {script_path!r})\n"
            "except Exception as error:\n"
            "    print(error, file=sys.stderr)\n"
            "    sys.exit(1)\n")
    try:
        done = subprocess.run([f"/proc/{target.pid}/exe", "-I", "-c", code], capture_output=True,
                              text=True, errors="replace", timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise CliError(f"cannot call sys.remote_exec on PID {target.pid}: {error}") from None
    if done.returncode != 0:
        text = (done.stderr.strip().splitlines() or ["failed"])[-1]
        if "disabled" in text.lower() or "not enabled" in text.lower():
            raise CliError(f"remote debugging is disabled in PID {target.pid} ({text})")
        if "permission" in text.lower() or "not permitted" in text.lower():
            raise CliError(f"not permitted to trace PID {target.pid}: {text}")
        raise CliError(f"sys.remote_exec into PID {target.pid} failed: {text}")


class InsideSession:
    """A recording running inside the target: :meth:`finish` stops it and returns its result."""

    def __init__(self, target: Target, directory: str, mode: str) -> None:
        self.target = target
        self.directory = directory
        self.mode = mode
        self.started = 0.0  # when the target reported recording (seconds since the epoch)

    @property
    def result_path(self) -> str:
        return os.path.join(self.directory, "peak.json" if self.mode == "peak" else "growth.txt")

    def ended(self) -> bool:
        """True once the target wrote its result by itself (it is exiting)."""
        return os.path.exists(self.result_path)

    def finish(self, target_alive: bool) -> Optional[str]:
        """Ask the target to stop; its result's text, or None (after a one-line note on stderr)."""
        try:
            if target_alive and not self.ended():
                _create(os.path.join(self.directory, "stop"))
                deadline = time.monotonic() + RESULT_SECONDS
                while not self.ended() and time.monotonic() < deadline:
                    if _read(os.path.join(self.directory, "error")) is not None:
                        break
                    if not _alive(self.target.pid):
                        break
                    time.sleep(0.05)
            text = _read(self.result_path)
            if text is None:
                error = _read(os.path.join(self.directory, "error"))
                why = error or ("the target exited before writing it" if not
                                _alive(self.target.pid) else "the target did not answer")
                print(f"mprofxx: no {self.mode} result from PID {self.target.pid}: {why}",
                      file=sys.stderr)
            return text
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def _create(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.close(fd)


def _read(path: str) -> Optional[str]:
    # The folder belongs to the target's user when root attaches: a link or a FIFO planted there
    # is not followed or waited on.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, encoding="utf-8", errors="replace") as source:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return source.read()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as source:
            return source.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def start_inside(pid: int, mode: str, seconds: Optional[float], chains: int = 3) -> InsideSession:
    """Start recording ``mode`` ("peak" or "growth") inside ``pid``; CliError when refused."""
    from mprofxx._version import __version__

    target = inspect(pid)
    _refuse_unsafe(target)
    if target.version < (3, 14) and shutil.which("lldb") is None:
        raise CliError(f"attaching to Python {target.version[0]}.{target.version[1]} needs lldb,"
                       " which is not installed (Debian: apt-get install lldb)")
    directory = tempfile.mkdtemp(prefix="mprofxx-attach-")
    try:
        owner = os.stat(f"/proc/{pid}").st_uid
        if owner != os.geteuid():  # root attaching to another user's process: it writes here
            os.chown(directory, owner, -1)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as source:
                cmdline = source.read().rstrip(b"\0").replace(b"\0", b" ")
        except OSError:
            cmdline = b""
        args = {"dir": directory, "cli_pid": os.getpid(), "version": __version__, "mode": mode,
                "seconds": seconds, "chains": chains,
                "cmdline": cmdline.decode("utf-8", "backslashreplace")}
        with open(os.path.join(os.path.dirname(__file__), "_attach_boot.py"),
                  encoding="utf-8") as source:
            boot = f"ARGS = {args!r}\n" + source.read()
        boot_path = os.path.join(directory, "boot.py")
        _write_new(boot_path, boot)
        snippet = _snippet(boot_path)
        if target.version >= (3, 14):
            enter_path = os.path.join(directory, "enter.py")
            _write_new(enter_path, snippet)
            _enter_with_remote_exec(target, enter_path)
        else:
            _enter_with_lldb(target, snippet)
        status = _wait_for_status(target, directory)
    except KeyboardInterrupt:
        shutil.rmtree(directory, ignore_errors=True)  # the boot finds no folder and returns
        raise CliError(f"interrupted before PID {pid} started recording") from None
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    if status.startswith("refused: "):
        shutil.rmtree(directory, ignore_errors=True)
        raise CliError(status[len("refused: "):].strip())
    session = InsideSession(target, directory, mode)
    session.started = float(status.split()[1])
    return session


def _write_new(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def _wait_for_status(target: Target, directory: str) -> str:
    deadline = time.monotonic() + START_SECONDS
    path = os.path.join(directory, "status")
    while time.monotonic() < deadline:
        text = _read(path)
        if text:
            return text
        if not _alive(target.pid):
            raise CliError(f"PID {target.pid} exited before it started recording")
        time.sleep(0.02)
    raise CliError(f"PID {target.pid} did not run our code within {START_SECONDS:g} s (its main"
                   " thread is blocked outside the interpreter loop?)")


def write_result(session: InsideSession, output: str, target_alive: bool) -> None:
    """Stop the target's recording; write ``<output>.peak.json`` (--peak) or print (--growth)."""
    from _memxx import MIB, write_output
    from _memxx_shared import peak_file
    from _memxx_shared.names import terminal_text
    from mprofxx import _profiles

    text = session.finish(target_alive)
    if text is None:
        return
    if session.mode == "growth":
        print(terminal_text(text.rstrip("\n") or "(no type grew)"), flush=True)
        return
    try:
        tables = peak_file.loads(text, f"PID {session.target.pid}'s peak table")
        path = _profiles.peak_path(output)
        write_output(path, peak_file.dumps(tables, os.path.basename(output)))
    except ValueError as error:  # PeakFileError, OutputFileError: one line naming the file
        raise CliError(str(error)) from None
    print(terminal_text(f"mprofxx: wrote {path} (peak tracked {tables[0].peak_bytes / MIB:.1f} MiB"
                        f" since attaching)"), flush=True)

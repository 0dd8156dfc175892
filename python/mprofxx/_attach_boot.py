"""The first code ``mprofxx attach --peak/--growth`` runs inside the target (not imported there).

The CLI copies this file's text into its private folder after a line ``ARGS = {...}`` and the
target executes it with fresh globals, from a pending call (3.11-3.13, placed by lldb) or
``sys.remote_exec`` (3.14+): in the main thread, GIL held, at a point where running Python code is
safe. It checks that the target may run our package, in the target's own environment and at the
CLI's version, then hands over to :func:`mprofxx._attach_target.run` on a thread of its own and
returns at once. Every outcome other than that hand-over is one line in ``<folder>/status``.
"""


def _boot(args):  # type: ignore[no-untyped-def]
    import os
    import sys

    directory = args["dir"]
    if not os.path.isdir(directory):  # the CLI gave up waiting and removed its folder
        return

    def answer(text: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(os.path.join(directory, "status"), flags, 0o600)
        with os.fdopen(fd, "w") as status:
            status.write(text)

    try:
        if "t" in getattr(sys, "abiflags", ""):
            answer(f"refused: PID {os.getpid()} is a free-threaded CPython build (not supported)")
            return
        import importlib.util

        had = "mprofxx" in sys.modules
        if importlib.util.find_spec("mprofxx") is None:
            answer(f"refused: PID {os.getpid()} cannot import mprofxx (not installed for"
                   f" {sys.executable}); install memory-profilerxx {args['version']} there")
            return
        import mprofxx

        if getattr(mprofxx, "__version__", None) != args["version"]:
            found = getattr(mprofxx, "__version__", "unknown")
            if not had:
                del sys.modules["mprofxx"]
            answer(f"refused: PID {os.getpid()} has mprofxx {found} ({mprofxx.__file__}), this"
                   f" command is {args['version']}")
            return
        try:
            import _memxx  # noqa: F401 - the extension built for this interpreter
        except ImportError as error:
            answer(f"refused: PID {os.getpid()} cannot load our extension: {error}")
            return
        import _thread

        from mprofxx import _attach_target

        _thread.start_new_thread(_attach_target.run, (args,))
    except BaseException as error:  # nothing may escape into the target's main thread
        try:
            answer(f"refused: {type(error).__name__}: {error}")
        except OSError:
            pass


if __name__ == "__mprofxx_attach__":  # run by the target, not imported
    _boot(ARGS)  # type: ignore[name-defined,no-untyped-call]  # noqa: F821 - the line the CLI writes above

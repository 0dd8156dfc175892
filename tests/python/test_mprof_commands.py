"""mprofxx's commands stay one module each, of one shape, and cli.py stays a dispatcher; the
project's user-facing errors share one base and one mapping to exit statuses."""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import pkgutil
import types
from pathlib import Path

import pytest

PYTHON = Path(__file__).resolve().parents[2] / "python"
CLI = PYTHON / "mprofxx" / "cli.py"
# The protocol of mprofxx.commands: member -> the parameters a function member takes.
PROTOCOL = {"NAME": None, "DESCRIPTION": None, "add_arguments": ["parser"],
            "split_arguments": ["args"], "run": ["options"]}
# Error classes that do not derive from MemxxError yet: their files are being changed for the
# peak file format (issue 30); remove a name once its class derives from it.



def protocol_problems(module: types.ModuleType) -> list[str]:
    """What ``module`` lacks of the command protocol, one line each (empty: it is complete)."""
    problems = []
    for member, parameters in PROTOCOL.items():
        value = getattr(module, member, None)
        if parameters is None:
            if not (isinstance(value, str) and value):
                problems.append(f"{module.__name__}.{member}: no text")
        elif not callable(value):
            problems.append(f"{module.__name__}.{member}: no function")
        elif len(inspect.signature(value).parameters) != len(parameters):
            problems.append(f"{module.__name__}.{member}: takes {parameters}")
    return problems


def command_modules() -> list[types.ModuleType]:
    import mprofxx.commands

    return [importlib.import_module(info.name)
            for info in pkgutil.iter_modules(mprofxx.commands.__path__, "mprofxx.commands.")
            if not info.name.rpartition(".")[2].startswith("_")]


def test_every_command_module_has_the_protocol_and_is_registered() -> None:
    from mprofxx import cli

    modules = command_modules()
    assert len(modules) == 8
    assert [problem for module in modules for problem in protocol_problems(module)] == []
    assert sorted(m.__name__ for m in modules) == sorted(c.__name__ for c in cli.COMMANDS.values())
    assert all(name == command.NAME for name, command in cli.COMMANDS.items())
    assert list(cli.COMMANDS) == ["run", "attach", "plot", "peak", "flame", "list", "rm", "clean"]


def test_a_module_missing_a_protocol_part_is_named() -> None:
    from mprofxx.commands import no_program

    incomplete = types.ModuleType("mprofxx.commands.half")
    incomplete.NAME, incomplete.DESCRIPTION = "half", ""
    incomplete.split_arguments = no_program
    incomplete.add_arguments = lambda: None
    assert protocol_problems(incomplete) == [
        "mprofxx.commands.half.DESCRIPTION: no text",
        "mprofxx.commands.half.add_arguments: takes ['parser']",
        "mprofxx.commands.half.run: no function",
    ]


def test_cli_only_dispatches() -> None:
    source = CLI.read_text()
    assert len(source.splitlines()) < 150
    tree = ast.parse(source)
    functions = {node.name for node in ast.walk(tree)
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    assert functions == {"parse", "main"}
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    calls = {node.func.attr for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}
    assert "add_argument" not in calls and "add_mutually_exclusive_group" not in calls


def test_parse_gives_run_its_program_unparsed_and_the_others_none() -> None:
    from mprofxx import cli

    options = cli.parse(cli.COMMANDS["run"], ["-T", "0.5", "job.py", "-T", "--x"])
    assert (options.interval, options.program) == (0.5, ["job.py", "-T", "--x"])
    options = cli.parse(cli.COMMANDS["rm"], ["--dry-run", "0", "-1"])
    assert (options.dry_run, options.profiles, options.program) == (True, ["0", "-1"], [])
    with pytest.raises(SystemExit) as stop:
        cli.parse(cli.COMMANDS["list"], ["job.py"])
    assert stop.value.code == 2


def test_exit_statuses_of_the_errors() -> None:
    from _memxx_shared.errors import CliError, MemxxError, RunnerError, exit_status

    assert issubclass(CliError, MemxxError) and issubclass(RunnerError, MemxxError)
    assert exit_status(CliError("no profile")) == 1
    assert exit_status(RunnerError("no program given")) == 2
    assert exit_status(BrokenPipeError()) == 1
    with pytest.raises(TypeError):
        exit_status(KeyError("x"))


def test_a_user_error_of_a_command_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from mprofxx import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(["rm", "3"]) == 1
    assert capsys.readouterr().err == "mprofxx: error: no profile number 3: 0 profile file(s) here\n"


def test_every_error_class_of_the_packages_derives_from_the_one_base() -> None:
    found = {}
    for path in PYTHON.glob("*/**/*.py"):
        if path.parts[-2] == "bindings":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                found[node.name] = path
    assert {"CliError", "RunnerError"} <= set(found)
    modules = {name: importlib.import_module(".".join(
        found[name].relative_to(PYTHON).with_suffix("").parts)) for name in found}
    from _memxx_shared.errors import MemxxError

    outside = {name for name, module in modules.items()
               if not issubclass(getattr(module, name), MemxxError)}
    assert outside == set()


def test_one_short_path_in_the_packages() -> None:
    defined = [path.relative_to(PYTHON).as_posix() for path in PYTHON.glob("*/**/*.py")
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.FunctionDef) and node.name == "short_path"]
    assert sorted(defined) == ["_memxx_shared/names.py"]
    from _memxx_shared.names import short_path
    from objgraphxx import _leaks, _sites

    assert _sites.short_path is short_path and _leaks.short_path is short_path


def test_help_of_run_keeps_its_usage_and_options(capsys: pytest.CaptureFixture[str]) -> None:
    from mprofxx import cli

    with pytest.raises(SystemExit) as stop:
        cli.main(["run", "--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0
    assert out.startswith("usage: mprofxx run [options] (script.py | -m module | program)"
                          " [args ...]\n\nRun a program and record its memory over time.\n")
    for option in ("-C, --include-children", "-M, --multiprocess", "-E, --exit-code", "--peak",
                   "--timeout TIMEOUT", "--backend {posix,pss,psutil,"):
        assert option in out
    # argparse names a short option's metavar too before 3.13 ("-t TIMEOUT, --timeout TIMEOUT").
    assert "-t TIMEOUT, --timeout TIMEOUT" in out or "-t, --timeout TIMEOUT" in out
    assert isinstance(cli.parse(cli.COMMANDS["attach"], ["1"]), argparse.Namespace)

"""mprofxx: record a program's memory over time and plot it (successor of memory_profiler's mprof).

The command line is the interface (``mprofxx run script.py`` then ``mprofxx plot``); see
:mod:`mprofxx.cli`. Inside a recorded program, :func:`mprofxx._spans.function_span` marks a
block as a FUNC span. Importing this package is cheap: the extension loads only when a command
needs it.

>>> import mprofxx; mprofxx.__version__
'0.1.0'
"""

from mprofxx._version import __version__ as __version__


def plot(*profiles: str, **options: object) -> object:
    """The matplotlib Figure ``mprofxx plot`` draws, for a notebook or a script.

    ``profiles``: .dat/.json files or indices as ``mprofxx list`` numbers them (default: the
    newest recording here); options as the command's: ``title``, ``flame``, ``slope``,
    ``window="xmin,xmax"``, ``children="separate"|"stacked"``, ``function_spans``. In a
    notebook the returned Figure is the cell's picture; elsewhere save it with ``savefig``.

    >>> fig = plot("mprofile_20240101000000.dat")  # doctest: +SKIP
    """
    from mprofxx import _profiles
    from mprofxx._plot import draw, plot_options, read_for_plot

    chosen = plot_options(**options)  # type: ignore[arg-type]
    recordings = read_for_plot(_profiles.latest_or(list(profiles)), chosen)
    import matplotlib.pyplot as plt

    figure = draw(recordings, chosen)
    # Out of pyplot's list of open figures: the notebook shows the returned Figure once (as the
    # cell's value), not a second time when the cell ends.
    plt.close(figure)
    return figure


def run_action() -> None:
    """``mprof run`` driven by ``sys.argv``, as memory_profiler's ``mprof.run_action()``.

    With ``--exit-code`` (``-E``) it raises SystemExit with the program's exit status, 0
    included, as mprof does; without it, it returns.

    >>> import sys; sys.argv = ["mprof", "--exit-code", "job.py"]; run_action()  # doctest: +SKIP
    """
    import sys

    from mprofxx.cli import main
    from mprofxx.commands.run import split_arguments

    own, _program = split_arguments(sys.argv[1:])
    code = main(["run", *sys.argv[1:]])
    if "--exit-code" in own or "-E" in own:
        raise SystemExit(code)


def function_labels(dotted_names: list[str]) -> dict[str, str]:
    """The shortest unambiguous dotted suffix of each function name, as mprof's.

    >>> function_labels(["x.z", "g.a.c", "f.a.b", "g.a.b", "b.c"])["g.a.c"]
    'a.c'
    """
    from mprofxx._plot import function_labels as labels

    return labels(list(dotted_names))

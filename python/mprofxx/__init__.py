"""mprofxx: record a program's memory over time and plot it (successor of memory_profiler's mprof).

The command line is the interface (``mprofxx run script.py`` then ``mprofxx plot``); see
:mod:`mprofxx.cli`. Inside a recorded program, :func:`mprofxx._spans.function_span` marks a
block as a FUNC span. Importing this package is cheap: the extension loads only when a command
needs it.

>>> import mprofxx; mprofxx.__version__
'0.1.0'
"""

__version__ = "0.1.0"

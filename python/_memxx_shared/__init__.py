"""What memory_profilerxx, mprofxx and objgraphxx share, in one place below the three.

Each of the three packages imports its own modules, this package, and the other packages' public
names only; none imports another's private (``_x``) module (``tests/python/test_import_cycles.py``
checks it). Everything here is private to the project: its modules are not an API.

- :mod:`~_memxx_shared.errors`: the base of the user-facing errors and their exit statuses.
- :mod:`~_memxx_shared.names`: names from outside made safe where they are shown; ``short_path``.
- :mod:`~_memxx_shared.notebook`: whether we run in a Jupyter kernel, and showing output there.
- :mod:`~_memxx_shared.peak_file`: the peak table, its text and its JSON file format.
- :mod:`~_memxx_shared.peak_capture`: the running peak recorder's figures as a peak table.
- :mod:`~_memxx_shared.spans`: FUNC spans written into an ``mprofxx run`` recording.

Importing the package loads none of its modules: a profiled program imports ``spans`` alone.
"""

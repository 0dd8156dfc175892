"""Output files of objgraphxx (graphs, images, snapshots), written through the project's one
safe writer (``_memxx.write_output``: a new file renamed into place; never through a link, a
FIFO or another user's file).

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), 'graph.dot')
>>> check_output_path(path)
>>> write_output(path, 'digraph {}\\n')
>>> open(path).read()
'digraph {}\\n'
"""

from __future__ import annotations

import errno
import os
from typing import Union

import _memxx


def check_output_path(path: str) -> None:
    """Return None, or raise before any work is done: FileNotFoundError if the directory is
    missing, ValueError (OutputFileError) if ``path`` is a link, not a regular file, or
    another user's. Nothing is created.

    >>> check_output_path('/proc/self/exe')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    _memxx.OutputFileError: /proc/self/exe: cannot write: is a symbolic link ...
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    _memxx.check_output(path)


def write_output(path: str, data: Union[str, bytes]) -> None:
    """Return None once ``data`` is the whole content of ``path`` (str is written as UTF-8).

    >>> write_output('/proc/self/exe', b'')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    _memxx.OutputFileError: /proc/self/exe: cannot write: is a symbolic link ...
    """
    check_output_path(path)
    _memxx.write_output(path, data)

"""Output files of objgraphxx: the checks made before one is written.

>>> import os, tempfile
>>> refuse_symlink(os.path.join(tempfile.mkdtemp(), 'graph.dot'))
"""

from __future__ import annotations

import os


def refuse_symlink(path: str) -> None:
    """Return None, or raise ValueError if ``path`` is a symbolic link: one planted in a shared
    directory would make us write wherever it points.

    >>> refuse_symlink('/proc/self/exe')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: refusing to write '/proc/self/exe': it is a symbolic link
    """
    if os.path.islink(path):
        raise ValueError("refusing to write %r: it is a symbolic link" % path)

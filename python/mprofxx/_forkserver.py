"""Preloaded by the forkserver of a program recorded with ``mprofxx run --peak``.

``mprofxx._child`` adds this module to ``multiprocessing.forkserver``'s preload list: the
forkserver records nothing itself, and each worker it forks records its own table.
"""

from mprofxx import _child

_child.install_profile()
_child.start_peak(forkserver=True)

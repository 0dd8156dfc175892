"""``python -m mprofxx ...`` is the ``mprofxx`` command."""

import sys

from mprofxx.cli import main

sys.exit(main())

"""``python -m chatgate.cli``: the ``chatgate`` command."""

import sys

from chatgate.cli import main

sys.exit(main())

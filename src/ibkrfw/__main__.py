"""``python -m ibkrfw``: the ``ibkrfw`` command."""

import sys

from ibkrfw.cli import main

sys.exit(main())

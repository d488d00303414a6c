"""``python -m ibkrfw.cli``: the ``ibkrfw`` command."""

import sys

from ibkrfw.cli import main

if __name__ == "__main__":  # importing this module (as a test of every module does) runs nothing
    sys.exit(main())

"""``python -m lineproto``: the console clients, as ``lineproto`` and ``client.py`` run them."""

import sys

from .console import main

if __name__ == "__main__":
    sys.exit(main())

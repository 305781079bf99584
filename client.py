#!/usr/bin/env python3
"""Console clients for the lineproto daemon.

    python3 client.py raw   [--host H] [--port P]    interactive line shell
    python3 client.py batch FILE [--host H] [--port P]  send FILE's lines, exit 0 if the last reply is 2yz
"""

import sys

from lineproto.console import main

if __name__ == "__main__":
    sys.exit(main())

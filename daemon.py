#!/usr/bin/env python3
"""Run the lineproto daemon, or administer its users (installed as ``lineproto-daemon``).

python3 daemon.py [--config FILE] [--host 127.0.0.1] [--port 36000] [--notify FILE] ...
python3 daemon.py useradd NAME --name "Real Name" --role reader [--users FILE]
python3 daemon.py [--config FILE] config [options]   the effective configuration, as TOML
"""

import sys

from lineproto.daemon import main

if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Console clients for the lineproto daemon.

python3 client.py raw   [--host H] [--port P]    interactive line shell
python3 client.py batch FILE [--host H] [--port P]  send FILE's lines, exit 0 if the last reply is 2yz
python3 client.py play [--user NAME]              a roulette table for people (guest by default)
python3 client.py simulate --strategy flat|martingale|1326 --players N --rounds R --budget B --base 10
                                                  betting strategies on RED, summary per strategy
python3 client.py meter [--user NAME] [--spawn]   the console meter reader
"""

import sys

from lineproto.console import main

if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Console clients for the lineproto daemon (README, "Talk to it"; each program's --help).

Installed as ``lineproto``; ``python -m lineproto`` runs it too.

python3 client.py raw   [--host H] [--port P]       interactive line shell (prompt and history on a terminal)
python3 client.py batch FILE [--host H] [--port P]  send FILE's lines, exit 0 if the last reply is 2yz
python3 client.py play [--user NAME]                a roulette table for people (guest by default)
python3 client.py simulate --strategy flat|martingale|1326 --players N --rounds R --budget B --base 10
                           [--workers N] [--user NAME]  betting strategies on RED, summary per strategy
python3 client.py meter [--user NAME] [--gui] [--spawn [--db PATH]]  the meter reader (console, or a Tk window)
python3 client.py --version

Exit status: 0 done, 1 the daemon could not be reached, refused or went away, 2 a mistake on the
command line, 130 Ctrl+C, 141 the reader of the output went away.
"""

import sys

from lineproto.console import main

if __name__ == "__main__":
    sys.exit(main())

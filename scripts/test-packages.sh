#!/usr/bin/env bash
# Install the Debian packages the test suite drives for real, when they are missing:
#   inetutils-telnet  tests/test_telnet.py runs a real telnet client through a pty
#   chromium          tests/test_cross_protocol.py loads a hostile page in headless Chromium
#   haproxy           tests/test_haproxy.py puts a real HAProxy (send-proxy, send-proxy-v2) in front of the daemon
#   xvfb, xdotool     tests/test_gui.py runs the meter window on a virtual X display and types into it
#   systemd           tests/test_systemd.py and test_inetd.py run systemd-socket-activate in front of the
#                     daemon and systemd-analyze verify on contrib/systemd (a container may lack them)
#   postgresql-15     tests on PostgreSQL start a throw-away server (scripts/pgserver.py: initdb, pg_ctl)
# As root (CI) it installs them with apt-get; otherwise it says what to install and the tests that
# need them fail with the same advice.
set -euo pipefail
missing=()
command -v telnet >/dev/null || missing+=(inetutils-telnet)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing+=(chromium)
PATH="$PATH:/usr/sbin:/sbin" command -v haproxy >/dev/null || missing+=(haproxy)
command -v Xvfb >/dev/null || missing+=(xvfb)
command -v xdotool >/dev/null || missing+=(xdotool)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql-15)
command -v systemd-socket-activate >/dev/null && command -v systemd-analyze >/dev/null || missing+=(systemd)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "test-packages: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "test-packages: missing ${missing[*]}: sudo apt-get install ${missing[*]}" >&2
fi

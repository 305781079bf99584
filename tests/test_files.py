"""Files the daemon writes hold secrets (password hashes): 0600 in 0700 directories, whatever the umask."""

import os
import stat as stat_module
import subprocess
import sys

from conftest import ROOT, Daemon


def run_daemon_py(*args, stdin="pw\n", cwd=None):
    return subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        preexec_fn=lambda: os.umask(0o022),
    )


def mode(path) -> int:
    return stat_module.S_IMODE(os.stat(path).st_mode)


def test_database_backup_and_users_file_are_private_with_a_lax_umask(tmp_path):
    db = tmp_path / "state" / "lineproto.db"
    result = run_daemon_py("useradd", "ada", "--name", "Ada", "--role", "admin", "--password-stdin", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert mode(db) == 0o600 and mode(db.parent) == 0o700
    assert run_daemon_py("backup", str(tmp_path / "copy.db"), "--db", str(db)).returncode == 0
    assert mode(tmp_path / "copy.db") == 0o600
    users = tmp_path / "users.txt"
    assert run_daemon_py("useradd", "bob", "--name", "Bob", "--password-stdin", "--users", str(users)).returncode == 0
    assert mode(users) == 0o600


def test_the_running_daemons_wal_and_shm_are_private(tmp_path):
    old = os.umask(0o022)
    try:
        daemon = Daemon(tmp_path, "--db", str(tmp_path / "live.db"))
    finally:
        os.umask(old)
    try:
        for name in ("live.db", "live.db-wal", "live.db-shm", daemon.notify.name):
            assert mode(tmp_path / name) == 0o600, name
    finally:
        daemon.stop()


def test_a_database_readable_by_others_is_reported(tmp_path):
    db = tmp_path / "open.db"
    assert run_daemon_py("useradd", "ada", "--name", "Ada", "--password-stdin", "--db", str(db)).returncode == 0
    os.chmod(db, 0o644)
    daemon = Daemon(tmp_path, "--db", str(db))
    try:
        assert f"{db} is readable by other users (mode 0644)" in daemon.wait_log("readable by other users")
    finally:
        daemon.stop()

"""daemon.py administration subcommands, all on the same --db."""

import subprocess
import sys

from conftest import ROOT, RawConnection


def admin(tmp_path, *args, stdin=""):
    return subprocess.run([sys.executable, str(ROOT / "daemon.py"), *args, "--db", str(tmp_path / "db.sqlite")],
                          input=stdin, capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_user_administration(tmp_path):
    result = admin(tmp_path, "useradd", "erin", "--name", "Erin Reader", "--role", "reader",
                   "--password-stdin", stdin="first pass\n")
    assert result.returncode == 0, result.stderr
    assert admin(tmp_path, "useradd", "ann", "--name", "Ann Admin", "--role", "admin", "--role", "reader",
                 "--password-stdin", stdin="x\n").returncode == 0
    listing = admin(tmp_path, "users").stdout.splitlines()
    assert listing == ["ann\tadmin,reader\tAnn Admin", "erin\treader\tErin Reader"]
    assert admin(tmp_path, "passwd", "erin", "--password-stdin", stdin="second pass\n").returncode == 0
    assert admin(tmp_path, "userdel", "ann").returncode == 0
    assert admin(tmp_path, "users").stdout.splitlines() == ["erin\treader\tErin Reader"]
    result = admin(tmp_path, "userdel", "ann")
    assert result.returncode == 2 and "no user ann" in result.stderr


def test_daemon_uses_database_users(tmp_path, start_daemon):
    admin(tmp_path, "useradd", "erin", "--name", "Erin Reader", "--role", "reader", "--password-stdin",
          stdin="first pass\n")
    daemon = start_daemon("--db", str(tmp_path / "db.sqlite"))
    with RawConnection(daemon.port) as raw:
        raw.reply()
        raw.command("USER erin")
        assert raw.command("PASS first pass").code == 230
    # a password changed while the daemon runs takes effect at the next login
    admin(tmp_path, "passwd", "erin", "--password-stdin", stdin="second pass\n")
    with RawConnection(daemon.port) as raw:
        raw.reply()
        raw.command("USER erin")
        assert raw.command("PASS first pass").code == 530
        raw.command("USER erin")
        assert raw.command("PASS second pass").code == 230


def test_first_start_tells_how_to_add_an_admin(tmp_path, start_daemon):
    daemon = start_daemon("--db", str(tmp_path / "empty.sqlite"))
    assert "useradd NAME --name 'Real Name' --role admin" in daemon.wait_log("no users yet")


def test_roster_import_and_offline_dump(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("meter\nG10001\nG10002\n")
    result = admin(tmp_path, "roster", "import", str(roster))
    assert result.returncode == 0 and "2 new" in result.stdout
    assert admin(tmp_path, "dump").stdout == ""


def test_backup_while_running(tmp_path, start_daemon):
    db = tmp_path / "db.sqlite"
    admin(tmp_path, "useradd", "erin", "--name", "Erin", "--role", "reader", "--password-stdin", stdin="p\n")
    start_daemon("--db", str(db))
    result = admin(tmp_path, "backup", str(tmp_path / "copy.sqlite"))
    assert result.returncode == 0, result.stderr
    copy = subprocess.run([sys.executable, str(ROOT / "daemon.py"), "users", "--db", str(tmp_path / "copy.sqlite")],
                          capture_output=True, text=True, timeout=60)
    assert copy.stdout.startswith("erin\treader")


def test_bad_databases_stop_the_start_with_one_line(tmp_path):
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"garbage" * 1000)
    for db in (str(corrupt), str(tmp_path / "missing" / "x.sqlite")):
        result = subprocess.run([sys.executable, str(ROOT / "daemon.py"), "--port", "0", "--db", db],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_guest_cannot_be_a_registered_user(tmp_path):
    """USER guest is the play-money login, answered without a lookup: the name is refused for accounts."""
    result = admin(tmp_path, "useradd", "guest", "--name", "Not A Guest", "--role", "player",
                   "--password-stdin", stdin="pw\n")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "daemon.py: guest is the play-money login without a password; it cannot be a registered user")
    users_file = tmp_path / "users.txt"
    users_file.write_text("guest:player:scrypt$x:Not A Guest\n")
    started = subprocess.run([sys.executable, str(ROOT / "daemon.py"), "--port", "0", "--db", ":memory:",
                              "--users", str(users_file)], capture_output=True, text=True, timeout=60)
    assert started.returncode == 2 and "cannot be a registered user" in started.stderr.splitlines()[-1]

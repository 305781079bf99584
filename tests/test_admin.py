"""daemon.py administration subcommands, all on the same --db."""

import subprocess
import sys

import pytest

import lineproto
from conftest import ROOT, Daemon, RawConnection


def admin(tmp_path, *args, stdin=""):
    return subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), *args, "--db", str(tmp_path / "db.sqlite")],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_user_administration(tmp_path):
    result = add_user(tmp_path, "erin", "reader", real_name="Erin Reader", password="first pass")
    assert result.returncode == 0, result.stderr
    assert (
        admin(
            tmp_path,
            "useradd",
            "ann",
            "--name",
            "Ann Admin",
            "--role",
            "admin",
            "--role",
            "reader",
            "--password-stdin",
            stdin="x\n",
        ).returncode
        == 0
    )
    listing = admin(tmp_path, "users").stdout.splitlines()
    assert listing == ["ann\tadmin,reader\tAnn Admin", "erin\treader\tErin Reader"]
    assert admin(tmp_path, "passwd", "erin", "--password-stdin", stdin="second pass\n").returncode == 0
    assert admin(tmp_path, "userdel", "ann", "--force").returncode == 0  # the last admin: --force
    assert admin(tmp_path, "users").stdout.splitlines() == ["erin\treader\tErin Reader"]
    result = admin(tmp_path, "userdel", "ann")
    assert result.returncode == 2 and "no user ann" in result.stderr


def test_daemon_uses_database_users(tmp_path, start_daemon):
    add_user(tmp_path, "erin", "reader", real_name="Erin Reader", password="first pass")
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
    copy = subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), "users", "--db", str(tmp_path / "copy.sqlite")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert copy.stdout.startswith("erin\treader")


def test_bad_databases_stop_the_start_with_one_line(tmp_path):
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"garbage" * 1000)
    (tmp_path / "a-file").write_text("not a directory")
    for db in (str(corrupt), str(tmp_path / "a-file" / "x.sqlite")):
        result = subprocess.run(
            [sys.executable, str(ROOT / "daemon.py"), "--port", "0", "--db", db],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_guest_cannot_be_a_registered_user(tmp_path):
    """USER guest is the play-money login, answered without a lookup: the name is refused for accounts."""
    result = admin(
        tmp_path, "useradd", "guest", "--name", "Not A Guest", "--role", "player", "--password-stdin", stdin="pw\n"
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "daemon.py: guest is the play-money login without a password; it cannot be a registered user"
    )
    users_file = tmp_path / "users.txt"
    users_file.write_text("guest:player:scrypt$x:Not A Guest\n")
    started = subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), "--port", "0", "--db", ":memory:", "--users", str(users_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 2 and "cannot be a registered user" in started.stderr.splitlines()[-1]


def one_line_error(result, text: str) -> None:
    """A command-line mistake: exit status 2 and exactly one line on stderr that says ``text``."""
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], result.stderr


def add_user(tmp_path, name, *roles, real_name="Someone", password="pw"):
    role_args = [arg for role in roles for arg in ("--role", role)]
    return admin(tmp_path, "useradd", name, "--name", real_name, *role_args, "--password-stdin", stdin=password + "\n")


def test_useradd_refuses_an_existing_user_and_usermod_changes_one(tmp_path):
    assert add_user(tmp_path, "ada", "admin", real_name="Ada Admin").returncode == 0
    one_line_error(add_user(tmp_path, "ada", "reader", real_name="Impostor"), "user ada exists: usermod")
    one_line_error(add_user(tmp_path, "ADA", "reader"), "user ada exists")
    assert admin(tmp_path, "users").stdout.splitlines() == ["ada\tadmin\tAda Admin"]
    result = admin(tmp_path, "usermod", "ada", "--add-role", "reader", "--name", "Ada Lovelace")
    assert result.returncode == 0, result.stderr
    assert admin(tmp_path, "users").stdout.splitlines() == ["ada\tadmin,reader\tAda Lovelace"]
    one_line_error(admin(tmp_path, "usermod", "ada", "--remove-role", "admin"), "ada is the only admin")
    one_line_error(admin(tmp_path, "usermod", "ada", "--role", "reader"), "ada is the only admin")
    one_line_error(admin(tmp_path, "userdel", "ada"), "ada is the only admin")
    one_line_error(admin(tmp_path, "usermod", "ada"), "nothing to change")
    one_line_error(admin(tmp_path, "usermod", "ada", "--add-role", "boss"), "unknown role 'boss'")
    one_line_error(admin(tmp_path, "usermod", "nobody", "--add-role", "reader"), "no user nobody")
    assert add_user(tmp_path, "bob", "admin").returncode == 0
    assert admin(tmp_path, "usermod", "ada", "--role", "player").returncode == 0  # bob is an admin too
    assert admin(tmp_path, "users").stdout.splitlines() == ["ada\tplayer\tAda Lovelace", "bob\tadmin\tSomeone"]
    assert admin(tmp_path, "usermod", "bob", "--remove-role", "admin", "--force").returncode == 0


def test_user_names_are_case_insensitive(tmp_path, start_daemon):
    assert add_user(tmp_path, "Erin", "reader", password="pw one").returncode == 0
    assert admin(tmp_path, "users").stdout.splitlines() == ["erin\treader\tSomeone"]
    assert admin(tmp_path, "passwd", "ERIN", "--password-stdin", stdin="pw two\n").returncode == 0
    one_line_error(add_user(tmp_path, "GUEST", "player"), "cannot be a registered user")
    daemon = start_daemon("--db", str(tmp_path / "db.sqlite"))
    with RawConnection(daemon.port) as raw:
        raw.reply()
        assert raw.command("USER eRiN").lines == ("Password required for erin",)
        assert raw.command("PASS pw two").lines[0].endswith("logged in as erin")
        assert raw.command("USER Guest").code == 230  # the play-money login, in any case


def test_reading_commands_never_create_a_database(tmp_path):
    missing = tmp_path / "typo.db"
    for command in (
        ["dump"],
        ["users"],
        ["userdel", "x"],
        ["passwd", "x", "--password-stdin"],
        ["usermod", "x", "--add-role", "reader"],
        ["backup", str(tmp_path / "copy.db")],
    ):
        result = subprocess.run(
            [sys.executable, str(ROOT / "daemon.py"), *command, "--db", str(missing)],
            input="pw\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        one_line_error(result, f"no database at {missing}")
        assert not missing.exists() and not (tmp_path / "copy.db").exists(), command


def test_a_missing_database_directory_is_created_private(tmp_path, start_daemon):
    """One rule for the default ./data and an explicit --db: the directory is created, mode 0700."""
    result = add_user(tmp_path, "erin", "reader")  # admin() uses --db tmp_path/db.sqlite: exists below
    assert result.returncode == 0
    nested = tmp_path / "new" / "deeper" / "state.db"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "daemon.py"),
            "useradd",
            "ann",
            "--name",
            "Ann",
            "--password-stdin",
            "--db",
            str(nested),
        ],
        input="pw\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert nested.exists() and (nested.parent.stat().st_mode & 0o777) == 0o700
    workdir = tmp_path / "fresh"
    workdir.mkdir()
    daemon = start_daemon("--db", str(workdir / "data" / "lineproto.db"))
    assert (workdir / "data").stat().st_mode & 0o777 == 0o700
    daemon.stop()
    default = Daemon(workdir, "--db", "data/lineproto.db", cwd=workdir)  # the default path, relative
    try:
        assert (workdir / "data" / "lineproto.db").exists()
    finally:
        default.stop()


@pytest.mark.parametrize(
    "args, text",
    [
        (["--port", "99999"], "argument -p/--port: a port is 0-65535: '99999'"),
        (["--port", "http"], "not a port number"),
        (["--max-connections", "0"], "argument --max-connections: must be 1 or more: '0'"),
        (["--idle-timeout", "0"], "argument --idle-timeout: must be more than 0 seconds: '0'"),
        (["--idle-timeout", "-1"], "must be more than 0 seconds"),
        (["--idle-timeout", "nan"], "must be more than 0 seconds"),
        (["--idle-timeout", "inf"], "must be a finite number of seconds"),
        (["--auth-workers", "0"], "must be 1 or more"),
        (["--password-cost", "1000"], "argument --password-cost: must be a power of two of 1024 or more"),
        (["--account-lock-after", "1"], "argument --account-lock-after: must be 2 or more"),
        (["--table-min", "0"], "--table-min"),
        (["--start-bankroll", "-5"], "--start-bankroll"),
        (["--cpu", "9999"], "--cpu 9999: this process may run on CPUs"),
        (
            ["--notify", "/nonexistent-dir/ready"],
            "--notify /nonexistent-dir/ready: directory /nonexistent-dir does not exist",
        ),
        (
            ["backup", "/nonexistent-dir/copy.db"],
            "backup /nonexistent-dir/copy.db: directory /nonexistent-dir does not exist",
        ),
        (["--roster", "missing.csv"], "roster file not found: missing.csv"),
        (["--users", "missing.txt"], "users file not found: missing.txt"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_command_line_mistakes_get_one_line_and_exit_2(tmp_path, args, text):
    db = tmp_path / "db.sqlite"
    add_user(tmp_path, "erin", "reader")  # a database exists, so backup reaches its own check
    result = subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), "--db", str(db), "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    one_line_error(result, text)


def test_version(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout.strip() == f"lineproto {lineproto.__version__}"


def test_an_in_memory_database_hint_names_what_works(tmp_path, start_daemon):
    daemon = start_daemon("--db", ":memory:")
    log = daemon.wait_log("no users")
    assert "--db :memory:" not in log and "--users FILE" in log


def test_make_run_takes_a_port_and_options():
    result = subprocess.run(
        ["make", "-n", "run", "PORT=37001", "ARGS=--engine threads"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "--port 37001 --engine threads" in result.stdout


def test_logins_are_logged_with_account_and_peer(tmp_path, start_daemon):
    daemon = start_daemon(users=True)
    with RawConnection(daemon.port) as raw:
        raw.reply()
        raw.command("USER carol")
        assert raw.command("PASS wrong").code == 530
        raw.command("USER \x1b[2Jevil")
        assert raw.command("PASS wrong").code == 530
        raw.command("USER carol")
        assert raw.command("PASS secret").code == 230
        peer = f"127.0.0.1:{raw.sock.getsockname()[1]}"
    log = daemon.wait_log(f"login carol from {peer}")
    assert f"login failed for carol from {peer}" in log
    assert f"login failed for \\x1b[2jevil from {peer}" in log and "\x1b" not in log


def test_a_deleted_user_is_logged_out_at_the_next_command(tmp_path, start_daemon):
    db = tmp_path / "db.sqlite"
    add_user(tmp_path, "ada", "admin")
    add_user(tmp_path, "erin", "player", "reader")
    daemon = start_daemon("--db", str(db))
    with RawConnection(daemon.port) as erin, RawConnection(daemon.port) as again:
        for raw in (erin, again):
            raw.reply()
            raw.command("USER erin")
            assert raw.command("PASS pw").code == 230
        assert erin.command("BET RED 10").code == 200
        job = again.command("JOB")
        assert job.code == 250
        assert admin(tmp_path, "usermod", "erin", "--remove-role", "player").returncode == 0
        assert erin.command("BET RED 10").code == 532  # roles are read again at the next store command
        assert admin(tmp_path, "userdel", "erin").returncode == 0
        assert erin.command("NOOP").code == 200  # NOOP does not use the account
        assert erin.command("JOB").code == 421  # erin still holds the reader role in her session
        assert erin.read_all() == b""  # closed after the 421
        assert again.command(f"READ {job.lines[0].split()[0]} 5").code == 421
    assert "account erin no longer exists" in daemon.wait_log("no longer exists")


def test_roster_list_clear_and_back_to_demo_mode(tmp_path, start_daemon):
    roster = tmp_path / "roster.csv"
    roster.write_text("meter\nG10001\nG10002\nG10003\n")
    one_line_error(admin(tmp_path, "roster", "list"), "no database at")
    assert admin(tmp_path, "roster", "import", str(roster)).returncode == 0
    daemon = start_daemon("--db", str(tmp_path / "db.sqlite"), users=True)
    with RawConnection(daemon.port) as carol:
        carol.reply()
        carol.command("USER carol")
        assert carol.command("PASS secret").code == 230
        assert carol.command("JOB").lines[0].startswith("G10001")
        assert carol.command("READ G10001 5").code == 250
        assert carol.command("JOB").lines[0].startswith("G10002")  # held by carol while listed
        assert admin(tmp_path, "roster", "list").stdout.splitlines() == [
            "G10001\tread\t-",
            "G10002\tunread\tcarol",
            "G10003\tunread\t-",
        ]
        assert admin(tmp_path, "roster", "clear").stdout.startswith("2 unread meters taken off the roster")
        assert admin(tmp_path, "roster", "list").stdout.splitlines()[0] == "G10001\tread\t-"
        assert admin(tmp_path, "roster", "demo").returncode == 0
        assert admin(tmp_path, "roster", "list").stdout.startswith("demo mode")
    one_line_error(admin(tmp_path, "roster", "import"), "roster import needs the roster FILE")
    one_line_error(admin(tmp_path, "roster", "clear", "x.csv"), "roster clear takes no file")
    assert admin(tmp_path, "dump").stdout.startswith("G10001=5@")  # the reading survived both

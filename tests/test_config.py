"""``--config FILE`` and ``daemon.py config``: every daemon option from a TOML file, the command line winning.

Through the real daemon (socket tests on both engines) and its command line; the key set is
checked against the parser itself, and against the example file in contrib/.
"""

import re
import subprocess
import sys
import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import ROOT, RawConnection, stat
from lineproto import config
from lineproto.argtypes import positive_int
from lineproto.daemon import build_parser

EXAMPLE = ROOT / "contrib" / "lineproto.toml"


def daemon_py(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), *args], capture_output=True, text=True, timeout=30, cwd=cwd
    )


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_the_file_sets_the_daemon_options(start_daemon, tmp_path, connect):
    settings = write(tmp_path / "lineproto.toml", "# one connection at a time\nmax-connections = 1\n")
    daemon = start_daemon("--config", str(settings))
    first = connect(daemon.port)
    with RawConnection(daemon.port) as second:
        refused = second.reply()
    assert refused.code == 421 and "too many connections" in refused.lines[0]
    first.command("USER guest")
    assert stat(first)["refused-capacity"] == "1"


def test_the_command_line_wins_over_the_file(start_daemon, tmp_path, connect):
    settings = write(tmp_path / "lineproto.toml", "max-connections = 1\n")
    daemon = start_daemon("--config", str(settings), "--max-connections", "2")
    connect(daemon.port)
    connect(daemon.port)  # the greeting (220), not a 421


def test_config_prints_the_effective_configuration_and_reads_it_back(tmp_path):
    settings = write(
        tmp_path / "lineproto.toml",
        'max-connections = 7\nrequire-tls = true\nengine = "threads"\nidle-timeout = 2.5\nlog-format = "json"\n',
    )
    shown = daemon_py("--config", str(settings), "config", "--port", "4000", "--db", ":memory:", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    for line in ("max-connections = 7", "require-tls = true", 'engine = "threads"', "idle-timeout = 2.5"):
        assert line in lines
    assert "port = 4000" in lines and 'db = ":memory:"' in lines  # what came after 'config'
    assert "# cert =" in lines  # not set: TOML has no null
    keys = {re.match(r"#? ?([a-z][a-z0-9-]*) =", line).group(1) for line in lines if " =" in line}
    assert keys == set(config.settings(build_parser()))  # every key, one a line
    again = daemon_py("--config", str(write(tmp_path / "shown.toml", shown.stdout)), "config", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == shown.stdout


def test_options_before_config_count_too_and_subcommands_read_the_file(tmp_path):
    database = tmp_path / "other.db"
    settings = write(tmp_path / "lineproto.toml", f"db = {str(database)!r}\n")
    shown = daemon_py("--config", str(settings), "--max-connections", "9", "config", cwd=tmp_path)
    assert "max-connections = 9" in shown.stdout.splitlines()
    added = subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), "--config", str(settings), "useradd", "ada", "--name", "Ada"]
        + ["--role", "reader", "--password-stdin"],
        input="a password\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
    )
    assert added.returncode == 0, added.stderr
    assert database.exists()  # the file's database, not ./data/lineproto.db
    listed = daemon_py("--config", str(settings), "users", cwd=tmp_path)
    assert listed.stdout == "ada\treader\tAda\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('host = "127.0.0.1"\n\nmax-conections = 5\n', "{path}:3: unknown key 'max-conections'"),
        ("port = 1\n  [server]\nport = 2\n", "{path}:2: server: tables are not used, the keys are flat"),
        ('max-connections = "many"\n', "{path}:1: max-connections: not a whole number: 'many'"),
        ("max-connections = 0\n", "{path}:1: max-connections: must be 1 or more: '0'"),
        ("max-connections = true\n", "{path}:1: max-connections takes a string or a number, not true"),
        ('\n\nrequire-tls = "yes"\n', '{path}:3: require-tls is true or false, not "yes"'),
        ('engine = "fibers"\n', "{path}:1: engine: 'fibers' is not one of events, threads"),
        ("port = [1, 2]\n", "{path}:1: port takes a string or a number, not [1, 2]"),
        ("version = true\n", "{path}:1: unknown key 'version'"),
        ("port = \n", "{path}: not valid TOML: "),
    ],
)
def test_a_mistake_in_the_file_is_one_line_naming_its_line(tmp_path, text, message):
    path = write(tmp_path / "bad.toml", text)
    result = daemon_py("--config", str(path), "--db", ":memory:", "--port", "0", cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("daemon.py: " + message.format(path=path)), line
    assert result.stdout == ""


def test_a_missing_file_is_one_line(tmp_path):
    result = daemon_py("--config", str(tmp_path / "nowhere.toml"), "config", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"daemon.py: --config {tmp_path / 'nowhere.toml'}: No such file or directory\n"


def test_an_option_added_later_is_a_key_without_touching_the_config_code(tmp_path):
    """What another feature does: one add_argument on the daemon's parser, and the file takes it."""
    parser = build_parser()
    parser.add_argument("--example-seconds", type=positive_int, default=30)
    parser.add_argument("--allow-from", action="append", default=[])
    path = write(tmp_path / "later.toml", 'example-seconds = 5\nallow-from = ["10.0.0.0/8", "127.0.0.1/32"]\n')
    args = parser.parse_args(config.file_arguments(parser, str(path)))
    assert args.example_seconds == 5
    assert args.allow_from == ["10.0.0.0/8", "127.0.0.1/32"]
    assert "example-seconds = 5" in config.effective(parser, args).splitlines()


def test_the_example_file_has_every_key_and_reads_as_a_config(tmp_path):
    example = EXAMPLE.read_text(encoding="utf-8")
    commented = dict(re.findall(r"^# ([a-z][a-z0-9-]*) = (.*)$", example, re.MULTILINE))
    keys = set(config.settings(build_parser()))
    assert keys - set(commented) == set(), "keys missing from contrib/lineproto.toml"
    assert set(commented) - keys == set(), "contrib/lineproto.toml names options the daemon does not have"
    as_is = daemon_py("--config", str(EXAMPLE), "config", cwd=tmp_path)
    defaults = daemon_py("config", cwd=tmp_path)
    assert as_is.returncode == 0 and as_is.stdout == defaults.stdout  # all commented out: changes nothing
    uncommented = "".join(f"{key} = {value.split('  #')[0]}\n" for key, value in commented.items())
    every_key = daemon_py("--config", str(write(tmp_path / "all.toml", uncommented)), "config", cwd=tmp_path)
    assert every_key.returncode == 0, every_key.stderr  # every example value is one the option takes


scalar = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),  # TOML's integers are 64-bit
    st.floats(allow_nan=False),
    st.text(st.characters(exclude_categories=("Cs",))),  # any text but lone surrogates, which no file holds
)


@given(st.one_of(scalar, st.lists(scalar, max_size=4)))
def test_what_config_prints_is_toml_that_reads_back_to_the_same_value(value):
    """A path with quotes, backslashes, control characters, a number, a list: the file says exactly it."""
    assert tomllib.loads(f"key = {config._toml(value)}\n")["key"] == value


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["max-connections", "auth-workers"]))
def test_a_number_in_the_file_is_the_number_on_the_command_line(number, key):
    parser = build_parser()
    from_file = parser.parse_args(config.file_arguments_from_text(parser, f"{key} = {number}\n", "f.toml"))
    assert from_file == parser.parse_args([f"--{key}", str(number)])

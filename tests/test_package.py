"""The package as a user installs it: a wheel built offline, installed into a fresh venv.

The venv gets the wheel alone (``--no-deps --no-index``): no extra, so a feature that needs one
must say which, in one line. Building and installing takes a few seconds, once per module.
"""

import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest

import lineproto
from conftest import ROOT


def run(*command, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin directory of a fresh venv holding only the lineproto wheel."""
    base = tmp_path_factory.mktemp("package")
    source = base / "source"  # a copy, so the build leaves nothing in the work tree
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "lineproto", source / "lineproto", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = base / "wheels"
    built = run(
        sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels)
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("lineproto-*.whl")
    assert wheel.name.startswith(f"lineproto-{lineproto.__version__}-")  # the version comes from lineproto/__init__.py
    env = base / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", str(python))
    added = run(*pip, "install", "-q", "--no-deps", "--no-index", str(wheel))
    assert added.returncode == 0, added.stderr
    return env / "bin"


def test_the_commands_and_modules_say_their_version(installed):
    expected = f"lineproto {lineproto.__version__}\n"
    for command in (
        [installed / "lineproto-daemon", "--version"],
        [installed / "lineproto", "--version"],
        [installed / "python", "-m", "lineproto", "--version"],
        [installed / "python", "-m", "lineproto.daemon", "--version"],
    ):
        result = run(*command, cwd="/")
        assert (result.returncode, result.stdout, result.stderr) == (0, expected, ""), command


def test_the_commands_name_themselves_in_their_mistakes(installed):
    for command, name in (
        ([installed / "lineproto-daemon", "--no-such-option"], "lineproto-daemon"),
        ([installed / "python", "-m", "lineproto.daemon", "--no-such-option"], "python -m lineproto.daemon"),
        ([installed / "lineproto", "raw", "--port", "x"], "lineproto raw"),
        ([installed / "python", "-m", "lineproto", "raw", "--port", "x"], "python -m lineproto raw"),
    ):
        result = run(*command, cwd="/")
        assert result.returncode == 2, command
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"{name}: error: "), line


def test_the_installed_daemon_serves_from_a_config_file_and_the_installed_client_talks(installed, tmp_path, engine):
    """The issue's "done when": lineproto-daemon --config FILE serves; lineproto batch and raw talk to it."""
    notify = tmp_path / "ready"
    settings = tmp_path / "example.toml"
    settings.write_text(f'port = 0\nnotify = "{notify}"\ndb = ":memory:"\nengine = "{engine}"\n')
    daemon = subprocess.Popen(
        [installed / "lineproto-daemon", "--config", str(settings)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not notify.exists():
            assert daemon.poll() is None, daemon.communicate()[1]
            assert time.monotonic() < deadline, "the installed daemon did not get ready"
            time.sleep(0.01)
        port = notify.read_text().splitlines()[0].rsplit(":", 1)[1]
        script = tmp_path / "session.txt"
        script.write_text("USER guest\nNOOP\nQUIT\n")
        batch = run(installed / "lineproto", "batch", str(script), "--port", port)
        assert batch.returncode == 0, batch.stderr
        assert "230 " in batch.stdout and "200 " in batch.stdout and "221 " in batch.stdout
        raw = run(installed / "lineproto", "raw", "--port", port, input="NOOP\nQUIT\n")
        assert raw.returncode == 0, raw.stderr
        assert "200 " in raw.stdout and "221 " in raw.stdout
    finally:
        daemon.terminate()
        assert daemon.wait(10) == 0
        assert f"{engine} engine" in daemon.communicate()[1]  # the file's engine
        daemon.stderr.close()


def test_a_feature_without_its_extra_is_one_line_naming_the_extra(installed, tmp_path):
    """The venv has no prometheus-client: --metrics-port says which extra brings it, before listening."""
    result = run(installed / "lineproto-daemon", "--port", "0", "--db", ":memory:", "--metrics-port", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "lineproto-daemon: --metrics-port needs the metrics extra: pip install 'lineproto[metrics]'\n"
    )
    assert "listening" not in result.stdout


def test_the_extras_are_named_for_what_they_bring_and_test_takes_them_all():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    brought = {
        "fast": "uvloop",
        "tls-test": "trustme",
        "metrics": "prometheus-client",
        "discovery": "zeroconf",
        "stats": "scipy",
        "postgres": "psycopg",
        "web": "aiohttp",
    }
    for extra, package in brought.items():
        assert any(requirement.startswith(package) for requirement in extras[extra]), extra
    assert f"lineproto[{','.join(brought)}]" in extras["test"]

"""``client.py raw`` on a terminal (a pseudo-terminal): prompt, replies, history kept between runs."""

import os
import signal
import stat as file_stat
import subprocess

from test_console_meter import Terminal, environment
from test_console_roulette import CLIENT_SCRIPT

RAW = [*CLIENT_SCRIPT, "raw"]
PROMPT = "lineproto> "
CTRL_D = "\x04"
CTRL_P = "\x10"  # readline: the previous line of the history


def raw_terminal(port, home, state_home=None):
    """``raw`` on a terminal, with HOME (and XDG_STATE_HOME, if given) pointing into the test's directory."""
    env = environment(HOME=str(home))
    env.pop("XDG_STATE_HOME", None)
    if state_home is not None:
        env["XDG_STATE_HOME"] = str(state_home)
    return Terminal([*RAW, "--port", str(port)], cwd=home, env=env)


def leave(term):
    os.write(term.master, CTRL_D.encode())
    assert term.finish() == 0


def test_prompt_waits_for_each_reply(shared, tmp_path):
    term = raw_terminal(shared.port, tmp_path)
    term.expect("220 lineproto")
    term.expect(PROMPT)
    term.type("NOOP")
    term.expect("200 OK")
    term.expect(PROMPT)  # the next prompt comes after the reply, not before it
    term.type("HELP NOOP")
    transcript = term.expect(PROMPT)
    assert transcript.index("214 Do nothing") < transcript.rindex(PROMPT)
    leave(term)


def test_no_prompt_when_piped(shared):
    result = subprocess.run(
        [*RAW, "--port", str(shared.port)],
        input="NOOP\nQUIT\n",
        capture_output=True,
        text=True,
        timeout=30,
        env=environment(),
    )
    assert result.returncode == 0, result.stderr
    assert PROMPT not in result.stdout + result.stderr
    assert result.stdout.splitlines()[1:] == ["200 OK", "221 Goodbye"]


def test_history_is_kept_between_runs_without_passwords(shared, tmp_path):
    term = raw_terminal(shared.port, tmp_path)
    term.expect(PROMPT)
    term.type("USER carol")
    term.expect(PROMPT)
    term.type("PASS secret")
    term.expect("230 ")
    term.expect(PROMPT)
    term.type("HELP NOOP")
    term.expect(PROMPT)
    leave(term)
    history = tmp_path / ".local" / "state" / "lineproto" / "raw_history"
    assert file_stat.S_IMODE(history.stat().st_mode) == 0o600
    text = history.read_text()
    assert "HELP NOOP" in text and "USER carol" in text
    assert "secret" not in text and "PASS" not in text

    again = raw_terminal(shared.port, tmp_path)
    again.expect(PROMPT)
    os.write(again.master, (CTRL_P + "\r").encode())  # the last line of the previous run, sent again
    again.expect("214 Do nothing")
    again.expect(PROMPT)
    leave(again)


def test_history_goes_to_xdg_state_home(shared, tmp_path):
    state = tmp_path / "state"
    term = raw_terminal(shared.port, tmp_path, state_home=state)
    term.expect(PROMPT)
    term.type("NOOP")
    term.expect(PROMPT)
    leave(term)
    assert "NOOP" in (state / "lineproto" / "raw_history").read_text()
    assert not (tmp_path / ".local").exists()


def test_ctrl_c_leaves_at_once(shared, tmp_path):
    term = raw_terminal(shared.port, tmp_path)
    term.expect(PROMPT)
    term.type("NOOP")
    term.expect(PROMPT)
    term.wait_asleep()
    os.killpg(term.process.pid, signal.SIGINT)
    assert term.finish() == 130
    assert "Traceback" not in term.transcript()
    assert "NOOP" in (tmp_path / ".local" / "state" / "lineproto" / "raw_history").read_text()

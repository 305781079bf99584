"""``--config FILE``: the daemon's options from a TOML file, and ``lineproto-daemon config``.

Every long option of the daemon is a key, spelled as the option without its dashes
(``max-connections = 100``, ``require-tls = true``), flat: no tables. The keys are read off the
argparse parser itself, so an option added to the daemon is a key the moment it exists. A value
goes through the option's own type and choices, exactly as on the command line; the file's
options are put in front of the command line's, so the command line wins.

Mistakes are one line naming the file, the key and its line (tomllib gives no line numbers: the
key's line is looked up in the text), raised as :class:`ConfigError` (exit 2).
"""

import argparse
import re
import tomllib

from .errors import StartError

#: Options that are not settings: they cannot be keys.
NOT_KEYS = frozenset({"help", "version", "config"})


class ConfigError(StartError):
    """A config file that cannot be used: one line, exit 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="read options from FILE (TOML, keys as the long options: max-connections = 100); "
        "the command line wins (docs/DEPLOYING.md, Configuration)",
    )


def settings(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The config keys of ``parser``: each long option's name without ``--``, and its action."""
    keys = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction | argparse._VersionAction):
            continue
        long_names = [name for name in action.option_strings if name.startswith("--")]
        if long_names and long_names[0][2:] not in NOT_KEYS:
            keys[long_names[0][2:]] = action
    return keys


def file_arguments(parser: argparse.ArgumentParser, path: str) -> list[str]:
    """The command-line arguments that ``path``'s settings stand for (to go before the real ones)."""
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except OSError as exc:
        raise ConfigError(f"--config {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return file_arguments_from_text(parser, text, path)


def file_arguments_from_text(parser: argparse.ArgumentParser, text: str, path: str) -> list[str]:
    """:func:`file_arguments` of a file's ``text``; ``path`` names it in messages."""
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    keys = settings(parser)
    arguments: list[str] = []
    for key, value in values.items():
        where = f"{path}:{_line_of(text, key)}"
        action = keys.get(key)
        if isinstance(value, dict):
            raise ConfigError(f"{where}: {key}: tables are not used, the keys are flat (max-connections = 100)")
        if action is None:
            raise ConfigError(f"{where}: unknown key {key!r} (the keys are the daemon's long options)")
        arguments += _arguments(action, key, value, where)
    return arguments


def _arguments(action: argparse.Action, key: str, value: object, where: str) -> list[str]:
    option = f"--{key}"
    if action.nargs == 0:  # a flag: true gives it, false leaves it out
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key} is true or false, not {_toml(value)}")
        return [option] if value else []
    repeatable = isinstance(action, argparse._AppendAction | argparse._ExtendAction)
    many = repeatable or action.nargs in ("*", "+") or isinstance(action.nargs, int)
    items = value if isinstance(value, list) and many else [value]
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise ConfigError(f"{where}: {key} takes {_wanted(action)}, not {_toml(value)}")
        _check(action, key, str(item), where)
    texts = [str(item) for item in items]
    if repeatable:
        return [f"{option}={text}" for text in texts]
    if many:
        return [option, *texts]
    return [f"{option}={texts[0]}"]


def _check(action: argparse.Action, key: str, text: str, where: str) -> None:
    """The value as the command line would take it: the option's type, then its choices."""
    converted: object = text
    if callable(action.type):
        try:
            converted = action.type(text)
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"{where}: {key}: {exc}") from None
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {key}: invalid value {text!r}") from None
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(str(choice) for choice in action.choices)
        raise ConfigError(f"{where}: {key}: {text!r} is not one of {choices}")


def _wanted(action: argparse.Action) -> str:
    return "a list of values" if action.nargs not in (None, "?") else "a string or a number"


def _line_of(text: str, key: str) -> int | str:
    """The line of ``text`` that sets ``key`` (or opens table ``[key]``); '?' if it cannot be found."""
    quoted = re.escape(key)
    pattern = re.compile(rf"""^\s*(\[+\s*)?(["']?){quoted}\2\s*[=.\]]""")
    for number, line in enumerate(text.splitlines(), 1):
        if pattern.match(line):
            return number
    return "?"


def _toml(value: object) -> str:
    """``value`` written as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):  # an option given several times (action="append")
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return _toml_string(str(value))  # an option's value prints back as the text it was given


#: What a TOML basic string cannot hold as it is: the quote, the backslash, and the control characters.
_ESCAPED = re.compile(r'["\\\x00-\x08\x0a-\x1f\x7f]')


def _toml_string(text: str) -> str:
    """``text`` as a TOML basic string (``"..."``): quote, backslash and control characters escaped."""
    return '"' + _ESCAPED.sub(_escape, text) + '"'


def _escape(match: re.Match) -> str:
    character = match.group()
    return "\\" + character if character in '"\\' else f"\\u{ord(character):04x}"


def effective(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The settings in ``args`` as a config file that ``--config`` reads back: every key, one a line.

    A setting with no value (None) is written commented out, since TOML has no null.
    """
    lines = []
    for key, action in settings(parser).items():
        value = getattr(args, action.dest, None)
        if action.nargs == 0 and not isinstance(value, bool):
            value = value == action.const if value is not None else None
        if action.nargs == 0 and isinstance(action, argparse._StoreFalseAction):
            value = not value
        lines.append(f"# {key} =" if value is None else f"{key} = {_toml(value)}")
    return "\n".join(lines) + "\n"

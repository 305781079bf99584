"""Parse a command line into a verb and its arguments."""

from typing import NamedTuple

#: Longest verb; short verbs are what legacy systems and people at telnet type.
MAX_VERB_LETTERS = 4


class CommandSyntaxError(ValueError):
    """The line does not start with a verb of 1-4 letters."""


class CommandLine(NamedTuple):
    """A verb (upper case) and the argument text after it (leading spaces removed).

    A named tuple: one is built per command, and tuples are the cheapest to build.
    """

    verb: str
    args: str = ""

    def arguments(self, count: int, rest_of_line: bool = False) -> list[str]:
        """Split the arguments on runs of spaces.

        With ``rest_of_line`` at most ``count`` values are returned and the last
        one holds everything after the previous separator, spaces included (a
        reason text, a password with spaces). Without it every word is returned.
        """
        if not rest_of_line:
            return self.args.split()
        words: list[str] = []
        text = self.args
        while text and len(words) < count - 1:
            word, _, text = text.partition(" ")
            words.append(word)
            text = text.lstrip(" ")
        if text:
            words.append(text)
        return words


def parse_command(line: str) -> CommandLine | None:
    """Return the command on ``line``, or None for a blank line (which gets no reply).

    Raises :class:`CommandSyntaxError` when the first word is not 1-4 letters. (Not memoised,
    though lines repeat: a cache would keep PASS lines, passwords, in memory.)
    """
    line = line.strip(" \t")
    if not line:
        return None
    verb, _, args = line.partition(" ")
    if not (len(verb) <= MAX_VERB_LETTERS and verb.isascii() and verb.isalpha()):
        raise CommandSyntaxError("a command starts with a verb of 1-4 letters")
    return _new_tuple(CommandLine, (verb.upper(), args.lstrip(" ")))  # CommandLine(...) without its Python frame


_new_tuple = tuple.__new__

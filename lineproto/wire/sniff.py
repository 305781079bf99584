"""Recognise lines of another protocol sent to our port (cross-protocol requests).

A web page on any site can make a browser POST to ``http://127.0.0.1:36000/``
with a ``text/plain`` body: the request line and headers reach us first, then
the body, whose lines a naive line server would run as commands. The defence is
to notice the HTTP at its first line (or any header line) and close the
connection before anything after it is read.

The checks are meant for lines that already failed as commands (unknown verb,
or not a verb at all), so a valid command line never pays for them.
"""

import re

#: HTTP methods (RFC 9110 section 9, plus PATCH and the HTTP/2 preface's PRI).
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "PRI"})

# A request line: METHOD SP request-target SP HTTP-version, or any line ending in an HTTP version.
_HTTP_VERSION = re.compile(r"HTTP/[0-9](?:\.[0-9])?\Z")
# A header field: a name (an RFC 9110 token holding a letter), then a colon with no space before it.
_HEADER_FIELD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]*[A-Za-z][!#$%&'*+.^_`|~0-9A-Za-z-]*:")


def looks_like_http(line: str) -> bool:
    """True when ``line`` is an HTTP request line or header field line.

    ``GET /``, ``POST /x HTTP/1.1``, ``OPTIONS * HTTP/1.1``, ``CONNECT host:443 HTTP/1.1``,
    ``Host: 127.0.0.1``, ``Content-Type: text/plain``: each is HTTP; a command
    of ours never has a method word with a target after it, nor a colon right
    after its first word.
    """
    text = line.strip(" \t")
    word, _, rest = text.partition(" ")
    if word.upper() in HTTP_METHODS and rest:
        target = rest.split(" ", 1)[0]
        if target.startswith(("/", "*", "http://", "https://")) or _HTTP_VERSION.search(rest):
            return True
    if _HTTP_VERSION.search(text):
        return True
    return _HEADER_FIELD.match(text) is not None

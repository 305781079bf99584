"""Named protocol limits; docs/PROTOCOL.md quotes these values."""

#: Longest command line the server accepts, in bytes, not counting the line ending.
MAX_LINE_BYTES = 1024

#: Longest telnet subnegotiation (IAC SB ... IAC SE) before it is abandoned, so a
#: stray IAC SB cannot swallow the commands that follow it.
MAX_SUBNEGOTIATION_BYTES = 256

#: Most bytes of telnet answers (WONT/DONT, WILL TIMING-MARK, the AYT line) to one chunk of
#: input; the requests beyond it go unanswered, so a negotiation flood cannot make the server
#: write without bound.
MAX_TELNET_ANSWER_BYTES = 256

#: Longest reply line the server sends, in bytes, including "NNN-" and CRLF.
MAX_REPLY_LINE_BYTES = 1000

#: Longest reply line the client parser accepts before declaring the peer broken.
MAX_CLIENT_REPLY_LINE_BYTES = 64 * 1024

"""The web gateway (``client.py web``, ``lineproto-web``): HTTP, the page and the line protocol over WebSocket.

A browser cannot open a TCP socket; the gateway speaks for it. Each browser session owns one
line-protocol connection to the daemon (:mod:`.sessions`, over :mod:`.upstream`); the REST
resources (:mod:`.app`) turn JSON into commands and replies into JSON, and ``/ws`` (:mod:`.ws`)
carries the raw lines. Nothing of the game is kept here. docs/WEB.md is the API.

Only :mod:`.cli` may be imported without the ``web`` extra (aiohttp).
"""

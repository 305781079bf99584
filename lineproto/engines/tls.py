"""The server's TLS certificate: loaded once, reloaded on request (SIGHUP), TLS 1.2 at least.

Both engines use :attr:`TlsConfig.context`, one context for the daemon's life: a reload
loads the new certificate into it, so it applies to the next handshake (the TLS port's or
``AUTH TLS``) while established sessions keep the certificate they were made with.
"""

from __future__ import annotations

import os
import ssl

from ..errors import StartError

#: Seconds a TLS handshake may take before the connection is dropped.
HANDSHAKE_TIMEOUT = 15.0


class TlsConfig:
    """A PEM certificate chain and key, as an ``ssl.SSLContext`` for the server side."""

    def __init__(self, cert: str, key: str | None = None):
        self.cert = cert
        self.key = key
        self.context = self._load()

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        for path in (self.cert, self.key):
            if path is not None and not os.path.isfile(path):
                raise StartError(f"TLS certificate or key not found: {path}")
        try:
            context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise StartError(f"cannot load the TLS certificate {self.cert}: {exc}") from None
        return context

    def reload(self) -> None:
        """Read the files again; on an error the old certificate stays and StartError says why.

        The new certificate is loaded into the same context (after a trial load into a fresh one
        has shown the files are good), so a listener that holds the context (the events engine's
        TLS port) uses it for its next handshake too.
        """
        self._load()  # StartError, and nothing changed, if the files are bad
        self.context.load_cert_chain(self.cert, self.key)

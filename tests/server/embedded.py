"""The embedded server that server, transport and load-test suites run against.

Imported as ``server.embedded`` from other test directories: ``tests/`` is on
``sys.path`` (pytest's default import mode puts the root conftest's folder
there) and ``tests/server`` is a package, so the name cannot clash with a
same-named helper module elsewhere in the suite.
"""

from __future__ import annotations

from kitewire.server import Server, ServerConfig


def embedded_server() -> Server:
    """A not yet started dev-keyed server on a free 127.0.0.1 port; use it as ``async with``.

    Empty rooms close after half a second so tests that leave a room see it go.
    """
    return Server(ServerConfig.dev(port=0, empty_timeout=0.5))

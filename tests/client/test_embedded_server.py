"""What the client relies on from the embedded server, beyond the wire contract."""

from __future__ import annotations

import socket

from ipyassistant.server.embedded import ServerThread


async def _app(scope: dict, receive: object, send: object) -> None:  # pragma: no cover
    pass


def test_the_embedded_server_listens_so_that_nagle_is_off():
    # asyncio's transports set TCP_NODELAY on an accepted connection only when the listening
    # socket was created as (AF_INET, SOCK_STREAM, IPPROTO_TCP); with proto 0 every response
    # waited ~40 ms for the client's delayed ACK (uvicorn writes head and body separately).
    thread = ServerThread(_app, server=object())  # type: ignore[arg-type]
    try:
        listener = thread.sock
        assert (listener.family, listener.type, listener.proto) == (
            socket.AF_INET,
            socket.SOCK_STREAM,
            socket.IPPROTO_TCP,
        )
    finally:
        thread.sock.close()

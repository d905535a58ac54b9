"""`python -m noboxweb.serve [daphne options] noboxweb.asgi:application`: daphne, with the
WebSocket limits the protocol documents.

Plain daphne accepts WebSocket messages up to 1 MiB while docs/protocol.md promises frames up to
MAX_FRAME_BYTES (12 MiB), and it fails an oversized message by dropping the TCP connection (the
browser sees 1006 and retries the same frame forever). Here the message and frame limits default
to settings.MAX_FRAME_BYTES (--websocket-max-message-size / --websocket-max-frame-size still
override them), and a message over the limit is answered with close code 1009 ("message too
big") through a closing handshake, which autobahn only does with failByDrop off.
"""

from __future__ import annotations

import os
import sys

from daphne.cli import CommandLineInterface
from daphne.server import Server
from django.conf import settings
from twisted.internet import tcp


class ClosingServer(Server):  # type: ignore[misc]
    """daphne's Server, failing WebSocket connections with a close frame instead of a drop."""

    def run(self) -> None:
        # Server.run() builds the WebSocket factory and then runs the reactor until shutdown, so
        # the option is set on the factory as soon as the reactor starts, before any connection.
        from twisted.internet import reactor

        reactor.callWhenRunning(self.close_politely)
        super().run()

    def close_politely(self) -> None:
        self.ws_factory.setProtocolOptions(failByDrop=False)


class EagerWriteServer(tcp.Server):
    """A TCP connection that sends at once when nothing is waiting to be sent.

    Why: Twisted's `write` only buffers and registers the socket for writability; the bytes go
    out on the reactor's next turn, which then unregisters it again. For a relay that writes one
    small WebSocket frame per socket every few tens of milliseconds, those two epoll changes and
    the extra turn cost more than the send itself (about a fifth of the process's CPU at 50
    streams, bench/relay.py). Trying `send` first is what asyncio's transports do. Whatever the
    kernel does not take now (a full socket buffer), and any error, goes the usual way: it is
    buffered and the reactor's `doWrite` sends it or reports the lost connection.
    """

    def write(self, data: bytes) -> None:
        if self._may_send_now(data):
            sent = self.writeSomeData(data)
            if isinstance(sent, int) and sent > 0:
                if sent == len(data):
                    return
                data = data[sent:]
        super().write(data)  # type: ignore[no-untyped-call]

    def _may_send_now(self, data: bytes) -> bool:
        return bool(
            data
            and self.connected
            and not self.TLS
            and not self.disconnecting
            and not self._writeDisconnected
            and not self._tempDataBuffer
            and self.offset >= len(self.dataBuffer)
        )


def send_eagerly() -> None:
    """TCP listeners of this process use `EagerWriteServer` for their connections (daphne
    listens through Twisted's endpoints, which build a `tcp.Port` and ask it for its class)."""
    tcp.Port.transport = EagerWriteServer


class ServeCommand(CommandLineInterface):  # type: ignore[misc]
    server_class = ClosingServer

    def __init__(self, max_frame_bytes: int) -> None:
        super().__init__()
        self.parser.set_defaults(
            websocket_max_message_size=max_frame_bytes,
            websocket_max_frame_size=max_frame_bytes,
        )


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "noboxweb.settings")
    send_eagerly()
    ServeCommand(settings.MAX_FRAME_BYTES).run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])

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
    ServeCommand(settings.MAX_FRAME_BYTES).run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])

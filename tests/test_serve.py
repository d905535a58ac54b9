"""noboxweb.serve's TCP connections: a write is sent at once when nothing waits before it, and
whatever the kernel does not take goes out later, in order, through the reactor as before.

A real reactor object (never run: its registrations are what is checked) and real sockets."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import pytest
from twisted.internet import tcp
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Protocol
from twisted.internet.selectreactor import SelectReactor

from noboxweb.serve import EagerWriteServer, send_eagerly


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(the server's side, the peer's side) of a real TCP connection on 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.create_connection(listener.getsockname())
        ours, _ = listener.accept()
    ours.setblocking(False)
    peer.settimeout(5)
    yield ours, peer
    ours.close()
    peer.close()


def transport_on(ours: socket.socket, reactor: SelectReactor) -> Any:
    """A connection as a listening port makes it (no port: nothing here accepts)."""
    protocol: Any = Protocol()
    transport = EagerWriteServer(ours, protocol, ours.getpeername(), cast(Any, None), 1, reactor)
    protocol.makeConnection(transport)
    return transport


def receive(peer: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += peer.recv(size - len(data))
    return data


def test_a_write_is_sent_at_once_without_a_turn_of_the_reactor(sockets):
    ours, peer = sockets
    reactor: Any = SelectReactor()
    transport = transport_on(ours, reactor)

    transport.write(b"frame one")
    transport.write(b"frame two")

    assert receive(peer, 18) == b"frame oneframe two"
    assert transport not in reactor.getWriters()


def test_what_the_kernel_does_not_take_waits_for_the_reactor_and_keeps_its_order(sockets):
    ours, peer = sockets
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    reactor: Any = SelectReactor()
    transport = transport_on(ours, reactor)
    big = bytes(range(256)) * 16384  # 4 MiB: far more than the socket's buffers hold

    transport.write(big)
    transport.write(b"and then this")  # must not jump ahead of the rest of `big`

    assert transport in reactor.getWriters()
    expected = big + b"and then this"
    with ThreadPoolExecutor(1) as reader:
        received = reader.submit(receive, peer, len(expected))
        while transport in reactor.getWriters():  # what the reactor does when it may write
            select.select([], [ours], [], 5)
            assert transport.doWrite() is None
        assert received.result(timeout=5) == expected


def test_a_broken_connection_is_left_to_the_reactor_to_report(sockets):
    ours, peer = sockets
    reactor: Any = SelectReactor()
    transport = transport_on(ours, reactor)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    peer.close()  # with linger 0: a reset, so the next sends fail

    for _ in range(3):  # the first send after a reset may still be taken by the kernel
        transport.write(b"x" * 1000)

    assert transport in reactor.getWriters()
    assert isinstance(transport.doWrite(), ConnectionLost)


def test_the_server_process_uses_it_for_every_tcp_connection(monkeypatch):
    monkeypatch.setattr(tcp.Port, "transport", tcp.Server)
    send_eagerly()
    assert tcp.Port.transport is EagerWriteServer

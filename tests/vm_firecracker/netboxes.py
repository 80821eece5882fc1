"""Network namespaces standing for hosts, guests and the outside in the network tests: a
``Box`` is a namespace, a thread inside it, and the listening sockets opened there."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator

import pytest

from vm_firecracker.simserver import Netns, NetnsThread, netns_unavailable

PORT = 8080


class Box:
    """A namespace, a thread inside it, and the listening sockets opened there."""

    def __init__(self, prefix: str) -> None:
        self.ns = Netns(prefix).create()
        self.thread = NetnsThread(self.ns.name)
        self.sockets: list[socket.socket] = []

    def ip(self, *argv: str) -> None:
        subprocess.run(["ip", "-n", self.ns.name, *argv], check=True, capture_output=True)

    def listen(self, port: int) -> None:
        def make() -> socket.socket:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("0.0.0.0", port))
            sock.listen(16)
            return sock

        self.sockets.append(self.thread.call(make))

    def connects(self, address: str, port: int = PORT, *, source: str | None = None) -> bool:
        """Whether a TCP connection from here to ``address`` is established."""

        def attempt() -> bool:
            try:
                with socket.create_connection(
                    (address, port), timeout=0.7, source_address=(source, 0) if source else None
                ):
                    return True
            except OSError:
                return False

        return self.thread.call(attempt)

    def accepted_from(self, index: int = 0, *, timeout: float = 2.0) -> str | None:
        """The peer address of the next connection on listening socket ``index`` (None when
        none arrives within ``timeout``)."""

        def accept() -> str | None:
            sock = self.sockets[index]
            sock.settimeout(timeout)
            try:
                conn, peer = sock.accept()
            except OSError:
                return None
            conn.close()
            return str(peer[0])

        return self.thread.call(accept)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.thread.close()
        self.ns.delete()


@contextlib.contextmanager
def four_boxes(prefix: str, *, what: str) -> Iterator[dict[str, Box]]:
    """host, guest1, guest2 and outside, each a ``Box`` named ``<prefix><initial>...``,
    closed afterwards; the test is skipped where namespaces cannot be made."""
    reason = netns_unavailable()
    if reason:
        pytest.skip(f"{what}: {reason}")
    made: dict[str, Box] = {}
    try:
        for name in ("host", "guest1", "guest2", "outside"):
            made[name] = Box(f"{prefix}{name[0]}")
        yield made
    finally:
        for box in made.values():
            box.close()

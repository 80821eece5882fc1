"""The fake guest's own network namespace, where MMDS answers at 169.254.169.254:80.

:func:`enter_guest_network` moves the calling thread (and what it forks) into a new, unnamed
network namespace (``unshare(CLONE_NEWNET)`` is per thread): ``lo`` up, an ``eth0`` whose veth
peer ``mmds0`` holds 169.254.169.254 (or ``lo`` when veth links are missing), MMDS bound
there, and every loopback port the runner will dial (the broker in its JIT config) relayed to
the same port outside by a :class:`Forwarder`. Nothing is named, so the namespace dies with
the fake, even after SIGKILL. Stdlib only.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import re
import socket
import subprocess
import threading
from typing import Any

from fakefc_mmds import serve_mmds

CLONE_NEWNET = 0x40000000
MMDS_IP = "169.254.169.254"
LOOPBACK_URL = re.compile(r"^https?://(?:127\.0\.0\.1|localhost):(\d+)(?:/|$)")


def libc_call(name: str, *args: int) -> None:
    """The libc function ``name`` (``unshare``, ``setns``...); OSError when it fails."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def loopback_ports(store: Any) -> set[int]:
    """Ports of loopback URLs in the JIT config's ``.runner`` (the broker the runner calls)."""
    try:
        config = store["latest"]["meta-data"]["blacksmith"]["runner_jit_config"]
        files = json.loads(base64.b64decode(config))
        runner = json.loads(base64.b64decode(files[".runner"]))
    except (KeyError, TypeError, ValueError):
        return set()
    found = (LOOPBACK_URL.match(v) for v in runner.values() if isinstance(v, str))
    return {int(m.group(1)) for m in found if m}


class Forwarder:
    """127.0.0.1:<port> inside the guest's namespace, relayed to the same port outside: the
    guest reaching the host through its tap, in the fake."""

    def __init__(self, listener: socket.socket, *, port: int, outer_ns: int) -> None:
        self.listener, self.port, self.outer_ns = listener, port, outer_ns
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        libc_call("setns", self.outer_ns, CLONE_NEWNET)  # this thread dials from outside
        while True:
            inner, _ = self.listener.accept()
            try:
                outer = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            except OSError:
                inner.close()
                continue
            outer.settimeout(None)
            for a, b in ((inner, outer), (outer, inner)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def outside_namespace() -> str:
    """Where the guest's relayed loopback ports are dialled from: the supervisor's namespace
    (the VMM's parent), which is the host's also when the VMM runs in its VM's own namespace
    (snapshot mode), standing for the guest's routed way out to the broker."""
    parent = f"/proc/{os.getppid()}/ns/net"
    return parent if os.path.exists(parent) else "/proc/thread-self/ns/net"


def enter_guest_network(
    handler: type[http.server.BaseHTTPRequestHandler], *, store: Any
) -> http.server.ThreadingHTTPServer:
    """This thread (and what it forks) moves to the guest's own network namespace; there
    MMDS (``handler``) serves 169.254.169.254:80 and the loopback ports in ``store`` are
    relayed outside. Returns the MMDS server."""
    outer_ns = os.open(outside_namespace(), os.O_RDONLY)
    libc_call("unshare", CLONE_NEWNET)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
    # The guest's eth0, its peer holding MMDS's address (some kernels lack dummy links).
    veth = ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "mmds0"]
    device = "mmds0" if subprocess.run(veth, capture_output=True).returncode == 0 else "lo"
    for argv in (
        ["ip", "addr", "add", f"{MMDS_IP}/32", "dev", device],
        ["ip", "link", "set", device, "up"],
        *([["ip", "link", "set", "eth0", "up"]] if device != "lo" else []),
    ):
        subprocess.run(argv, check=True, capture_output=True)
    server = serve_mmds((MMDS_IP, 80), handler)
    for port in sorted(loopback_ports(store)):
        listener = socket.create_server(("127.0.0.1", port))
        Forwarder(listener, port=port, outer_ns=outer_ns)
    return server

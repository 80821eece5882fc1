"""The 100 hosts' agents of ``hosts_live``: a process of their own that sends their reports to
the control plane over HTTP, each host on its own kept-alive connection, so that none of the
agents' CPU is counted as the control plane's.

``python hosts_agents.py PORT BODIES`` (BODIES: a JSON file of ``[[headers, body], ...]``, the
hosts' reports in the order they are sent) then, on standard input, ``send SECONDS RATE``
posts RATE reports a second for SECONDS (the bodies in turn, each once) and answers ``sent
N``; ``quit`` (or the end of input) ends it. A report that is not answered 200, or is asked
to be sent whole (``resend``: the bench reckoned a version wrong), ends it with the answer on
standard error.
"""

from __future__ import annotations

import http.client
import json
import pathlib
import sys
import time

PATH = "/api/agent/report"


def send(
    connections: dict[str, http.client.HTTPConnection],
    bodies: list[tuple[dict[str, str], bytes]],
    *,
    port: int,
    index: int,
) -> None:
    headers, body = bodies[index % len(bodies)]
    slot = headers["authorization"]  # each host's own connection
    for attempt in (1, 2):  # a connection the server closed: once more on a new one
        if slot not in connections:
            connections[slot] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connections[slot].request("POST", PATH, body=body, headers=headers)
            answer = connections[slot].getresponse()
            text = answer.read()
            break
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            connections.pop(slot).close()
            if attempt == 2:
                raise
    if answer.status != 200 or b'"resend"' in text:  # resend: a change of another version
        sys.exit(f"report {index} answered {answer.status}: {text[:300]!r}")


def main() -> None:
    port = int(sys.argv[1])
    found = json.loads(pathlib.Path(sys.argv[2]).read_text())
    bodies = [(dict(headers), body.encode()) for headers, body in found]
    connections: dict[str, http.client.HTTPConnection] = {}
    sent = 0
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        seconds, rate = float(words[1]), float(words[2])
        started, count = time.perf_counter(), 0
        while (elapsed := time.perf_counter() - started) < seconds:
            if count < elapsed * rate:
                send(connections, bodies, port=port, index=sent)
                sent, count = sent + 1, count + 1
            else:
                time.sleep(min(0.005, (count + 1) / rate - elapsed))
        print(f"sent {count}", flush=True)
    for connection in connections.values():
        connection.close()


if __name__ == "__main__":
    main()

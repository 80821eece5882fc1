"""The 100 hosts' agents of ``hosts_live``: a process of their own that sends their reports to
the control plane over HTTP, each host on its own kept-alive connection, so that none of the
agents' CPU is counted as the control plane's. Each report is sent by a thread of its own
(a pool), as each host's agent sends its own: the pace does not wait for a reply (the control
plane answers a changed report when its group write commits, ``store/beatgroup.py``).

``python hosts_agents.py PORT BODIES`` (BODIES: a JSON file of ``[[headers, body], ...]``, the
hosts' reports in the order they are sent) then, on standard input, ``send SECONDS RATE``
posts RATE reports a second for SECONDS (the bodies in turn, each once) and answers ``sent
N``; ``quit`` (or the end of input) ends it. A report that is not answered 200, or is asked
to be sent whole (``resend``: the bench reckoned a version wrong), ends it with the answer on
standard error.
"""

from __future__ import annotations

import collections
import concurrent.futures
import http.client
import json
import pathlib
import sys
import threading
import time

PATH = "/api/agent/report"
HOSTS_SENDING_AT_ONCE = 32


def send(
    connections: dict[str, http.client.HTTPConnection],
    bodies: list[tuple[dict[str, str], bytes]],
    *,
    port: int,
    index: int,
    locks: collections.defaultdict[str, threading.Lock],
) -> None:
    headers, body = bodies[index % len(bodies)]
    slot = headers["authorization"]  # each host's own connection, one report at a time
    with locks[slot]:
        _send_on(connections, slot, headers=headers, body=body, port=port, index=index)


def _send_on(
    connections: dict[str, http.client.HTTPConnection],
    slot: str,
    *,
    headers: dict[str, str],
    body: bytes,
    port: int,
    index: int,
) -> None:
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
    locks: collections.defaultdict[str, threading.Lock] = collections.defaultdict(threading.Lock)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=HOSTS_SENDING_AT_ONCE)
    sent = 0
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        seconds, rate = float(words[1]), float(words[2])
        started, count, posted = time.perf_counter(), 0, []
        while (elapsed := time.perf_counter() - started) < seconds:
            if count < elapsed * rate:
                one = {"port": port, "index": sent, "locks": locks}
                posted.append(pool.submit(send, connections, bodies, **one))
                sent, count = sent + 1, count + 1
            else:
                time.sleep(min(0.005, (count + 1) / rate - elapsed))
        for report in posted:
            report.result()  # a report refused ends it (``send``)
        print(f"sent {count}", flush=True)
    pool.shutdown()
    for connection in connections.values():
        connection.close()


if __name__ == "__main__":
    main()

"""A minimal stand-in for the simulator's runner broker, for the Firecracker end-to-end test.

It speaks the protocol of ``blacksmith_mini.simulator.runner`` (``POST /connect``, long-polled
``GET /next``, ``POST /jobs/<id>/complete``, ``POST /disconnect``) and mints JIT configs in the
format that runner unpacks. Tests hand a job to a named runner with :meth:`MiniBroker.give_job`.
"""

from __future__ import annotations

import base64
import http.server
import json
import queue
import threading
from typing import Any


def _b64(value: object) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # runners killed mid long-poll


class MiniBroker:
    """Threaded HTTP broker on 127.0.0.1; use as a context manager."""

    def __init__(self) -> None:
        self.jobs: dict[str, queue.Queue[dict[str, Any]]] = {}
        self.completed: list[dict[str, Any]] = []
        self.connected: list[str] = []
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> MiniBroker:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def jit_config(self, runner: str) -> str:
        """A JIT config for ``runner`` pointing at this broker."""
        self.jobs.setdefault(runner, queue.Queue())
        return _b64(
            {
                ".runner": _b64({"agentId": runner, "agentName": runner, "serverUrl": self.url}),
                ".credentials": _b64({"scheme": "OAuthAccessToken"}),
                ".credentials_rsaparams": _b64({"d": f"secret-of-{runner}"}),
            }
        )

    def give_job(
        self,
        runner: str,
        *,
        name: str = "build",
        duration: float = 0.2,
        conclusion: str = "success",
        job_id: int = 1,
    ) -> None:
        """Queue one job for ``runner``."""
        self.jobs.setdefault(runner, queue.Queue()).put(
            {"job_id": job_id, "name": name, "duration": duration, "conclusion": conclusion}
        )

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        broker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: object = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                runner = self.headers.get("x-runner-id", "")
                if self.path == "/connect":
                    broker.connected.append(runner)
                elif self.path.startswith("/jobs/"):
                    broker.completed.append({"runner": runner, **(body or {})})
                self._reply(200, {})

            def do_GET(self) -> None:
                runner = self.headers.get("x-runner-id", "")
                wait = float(self.path.partition("wait=")[2] or 0)
                try:
                    job = broker.jobs.setdefault(runner, queue.Queue()).get(timeout=wait or 0.01)
                except queue.Empty:
                    self._reply(204)
                    return
                self._reply(200, job)

        return Handler

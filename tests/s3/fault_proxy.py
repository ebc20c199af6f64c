"""A fault-injecting, request-counting HTTP proxy in front of an S3 API, run as its own process:
`python -m tests.s3.fault_proxy http://upstream:port` prints its endpoint, then serves.

`GET /__fault__?mode=...&arg=...` sets the fault and answers the counters as JSON:
- `none`: forward everything;
- `slowdown` (arg: N): answer every third request with 503 SlowDown, N times in all;
- `deny-put` (arg: substring): answer 403 AccessDenied to PUTs whose path contains it;
- `delay` (arg: milliseconds): forward everything, each request held that long first (an S3
  round trip from Lambda is ~25 ms; loopback is ~0).

`GET /__count__` answers the requests counted since the last `GET /__count__?reset=1`: the total,
per kind (LIST, GET, GET-range, HEAD, PUT, PUT-conditional, POST, DELETE) and the list of
(kind, path) in order, so a test or the benchmark can say where the round trips go.
""
(In its own process because delta-rs holds the GIL in some calls, which would stall a proxy
thread in the test's process.)
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message></Error>"
)


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.mode = "none"
        self.arg = ""
        self.requests = 0
        self.injected = 0
        self.delay_ms = 0.0
        self.counted: list[tuple[str, str]] = []

    def count(self, kind: str, path: str) -> None:
        with self.lock:
            self.counted.append((kind, path))

    def counts(self, reset: bool) -> dict[str, object]:
        with self.lock:
            by_kind: dict[str, int] = {}
            for kind, _ in self.counted:
                by_kind[kind] = by_kind.get(kind, 0) + 1
            answer = {"total": len(self.counted), "by_kind": by_kind, "requests": self.counted}
            if reset:
                self.counted = []
            return answer

    def fault(self, method: str, path: str) -> tuple[int, bytes] | None:
        with self.lock:
            self.requests += 1
            answer: tuple[int, bytes] | None = None
            if self.mode == "delay":
                pass
            elif (
                self.mode == "slowdown" and self.injected < int(self.arg) and self.requests % 3 == 0
            ):
                answer = 503, SLOW_DOWN
            elif self.mode == "deny-put" and method == "PUT" and self.arg in path:
                answer = 403, ACCESS_DENIED
            if answer:
                self.injected += 1
            return answer


def request_kind(method: str, path: str, headers: dict[str, str]) -> str:
    """What an S3 request is, as counted: LIST, GET, GET-range, HEAD, PUT, PUT-conditional, …"""
    parsed = urlparse(path)
    query = parse_qs(parsed.query, keep_blank_values=True)
    lower = {k.lower(): v for k, v in headers.items()}
    if method == "GET":
        key = parsed.path.strip("/").partition("/")[2]
        if "list-type" in query or not key:
            return "LIST"
        return "GET-range" if "range" in lower else "GET"
    if method == "PUT":
        if "if-none-match" in lower or "if-match" in lower:
            return "PUT-conditional"
        return "PUT"
    return method


def serve(upstream_url: str) -> None:
    upstream = urlparse(upstream_url)
    state = State()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _reply(self, status: int, payload: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path.startswith("/__fault__"):
                query = parse_qs(urlparse(self.path).query)
                with state.lock:
                    if "mode" in query:
                        state.mode = query["mode"][0]
                        state.arg = query.get("arg", [""])[0]
                        state.injected = state.requests = 0
                        state.delay_ms = float(state.arg or 0) if state.mode == "delay" else 0.0
                    stats = {"requests": state.requests, "injected": state.injected}
                self._reply(200, json.dumps(stats).encode(), "application/json")
                return
            if self.path.startswith("/__count__"):
                reset = "reset" in parse_qs(urlparse(self.path).query)
                self._reply(200, json.dumps(state.counts(reset)).encode(), "application/json")
                return
            state.count(request_kind(self.command, self.path, dict(self.headers)), self.path)
            if state.delay_ms:
                time.sleep(state.delay_ms / 1000)
            answer = state.fault(self.command, self.path)
            if answer:
                self._reply(answer[0], answer[1], "application/xml")
                return
            conn = http.client.HTTPConnection(
                upstream.hostname or "127.0.0.1", upstream.port, timeout=60
            )
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in {"transfer-encoding", "connection", "content-length"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            conn.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1])

"""An HTTP server on loopback with a request log and injected faults, under each fake provider."""

from __future__ import annotations

import enum
import json
import threading
import time
import urllib.parse
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from tests.harness.clock import FrozenClock


class Fault(enum.Enum):
    HTTP_500 = "http-500"  # the provider's gateway fails (an HTML page, as gateways send)
    HANG = "hang"  # read the request, never answer (until stop())
    RATE_LIMIT = "rate-limit"  # the provider's own "too many requests" answer


class Request:
    def __init__(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> None:
        self.method, self.path, self.query, self.headers, self.body = method, path, query, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


class ProviderServer:
    """Subclasses implement ``handle(request) -> (status, json-able answer)`` and ``rate_limited(request)``.

    ``delay_s``: how long each answer takes, as a real provider's round trip does (requests overlap meanwhile);
    ``in_flight`` and ``most_in_flight`` count the requests being answered at once."""

    def __init__(self, clock: FrozenClock, *, delay_s: float = 0.0) -> None:
        self.clock = clock
        self.delay_s = delay_s
        self.in_flight = 0
        self.most_in_flight = 0
        self.requests: list[Request] = []
        self.faults: deque[Fault] = deque()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def inject(self, *faults: Fault) -> None:
        """The next requests, one fault each, in order."""
        self.faults.extend(faults)

    def start(self) -> ProviderServer:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
                request = Request(
                    self.command, parts.path, query, {k.lower(): v for k, v in self.headers.items()}, body
                )
                with provider._lock:
                    provider.requests.append(request)
                    fault = provider.faults.popleft() if provider.faults else None
                    provider.in_flight += 1
                    provider.most_in_flight = max(provider.most_in_flight, provider.in_flight)
                try:
                    self._reply(request, fault)
                finally:
                    with provider._lock:
                        provider.in_flight -= 1

            def _reply(self, request: Request, fault: Fault | None) -> None:
                if provider.delay_s:
                    time.sleep(provider.delay_s)  # the provider's round trip; other requests are answered meanwhile
                if fault is Fault.HANG:
                    provider._stop.wait()
                    return
                if fault is Fault.HTTP_500:
                    self._answer(500, b"<html><body>500 Internal Server Error</body></html>", "text/html")
                    return
                with provider._lock:
                    status, answer = (
                        provider.rate_limited(request) if fault is Fault.RATE_LIMIT else provider.handle(request)
                    )
                self._answer(status, json.dumps(answer, ensure_ascii=False).encode(), "application/json")

            def _answer(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", f"{kind}; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> ProviderServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def handle(self, request: Request) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError

    def rate_limited(self, request: Request) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # senders at once connect at once: none is refused by a short listen queue


def post_json(url: str, payload: Any) -> tuple[int, Any]:
    """What a provider's push does: POST a JSON body to the customer's callback URL."""
    import urllib.request

    body = json.dumps(payload, ensure_ascii=False).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()

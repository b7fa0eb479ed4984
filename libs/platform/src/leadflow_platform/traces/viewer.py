"""The trace viewer: a local HTTP page of the recent traces in a SpanStore (stdlib server on
a thread). `/` lists the latest traces; `/?trace=<trace id>` shows one."""

from __future__ import annotations

import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from leadflow_platform.traces.page import render_page
from leadflow_platform.traces.spans import SpanStore
from leadflow_platform.traces.tree import build_trace

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
# The page's own inline style only: nothing else may load or run.
_POLICY = "default-src 'none'; style-src 'unsafe-inline'"


class TraceViewer:
    def __init__(
        self,
        store: SpanStore,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        limit: int = 50,
        receiver_endpoint: str = "",
    ) -> None:
        self._store = store
        self._host = host
        self._port = port
        self._limit = limit
        self.receiver_endpoint = receiver_endpoint
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self._host in ("0.0.0.0", "") else self._host
        return f"http://{host}:{self._port}/"

    def page(self, trace_id: str | None = None) -> str:
        if trace_id is not None:
            spans = self._store.trace(trace_id)
            groups = [spans] if spans else []
        else:
            groups = self._store.traces(self._limit)
        views = [build_trace(spans) for spans in groups]
        return render_page(views, received=self._store.received, endpoint=self.receiver_endpoint)

    def start(self) -> TraceViewer:
        viewer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path != "/":
                    self._send(HTTPStatus.NOT_FOUND, "not found", "text/plain")
                    return
                wanted = parse_qs(url.query).get("trace", [None])[0]
                if wanted is not None and not _TRACE_ID.match(wanted):
                    self._send(HTTPStatus.BAD_REQUEST, "trace: 32 hex digits", "text/plain")
                    return
                self._send(HTTPStatus.OK, viewer.page(wanted), "text/html")

            def _send(self, status: HTTPStatus, body: str, content_type: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", f"{content_type}; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Security-Policy", _POLICY)
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return  # the `up` console is for the suite's own output

        self._server = ThreadingHTTPServer((self._host, self._port), Handler)
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="trace-viewer", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> TraceViewer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

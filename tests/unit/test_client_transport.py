"""``alignscope.transport.HttpTransport`` against a real HTTP/1.1 server that, like uvicorn after its
keep-alive timeout, closes a connection after answering without saying so: the next message goes
out on a new connection instead of being reported unreachable (and spooled)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from alignscope.transport import HttpTransport, Unreachable


class ClosesAfterEachAnswer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless told otherwise; the answer does not tell
    seen: ClassVar[list[int]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).seen.append(body["n"])
        answer = json.dumps({"ok": body["n"]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
        self.close_connection = True  # the idle timeout, early

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    ClosesAfterEachAnswer.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ClosesAfterEachAnswer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_a_connection_the_server_closed_while_idle_is_replaced_not_reported(server) -> None:
    transport = HttpTransport(f"http://127.0.0.1:{server.server_address[1]}")
    assert [transport.send("POST", "/x", {"n": n})["ok"] for n in range(4)] == [0, 1, 2, 3]
    assert ClosesAfterEachAnswer.seen == [0, 1, 2, 3]  # each message delivered once


def test_a_server_that_is_down_is_still_unreachable(server) -> None:
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    with pytest.raises(Unreachable):
        HttpTransport(f"http://127.0.0.1:{port}", timeout_s=2).send("POST", "/x", {"n": 0})

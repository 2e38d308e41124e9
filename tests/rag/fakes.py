"""Fakes of outside services on loopback, shared by the RAG tests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    """An OpenAI-compatible /chat/completions on loopback: records requests, answers canned text.

    ``hold_s``: each request waits until :attr:`release` is set or that many seconds pass
    before answering (a slow model); :attr:`arrived` counts requests that reached it."""

    def __init__(self, answer: str, status: int = 200, *, hold_s: float | None = None):
        self.requests: list[dict] = []
        self.release = threading.Event()
        self.arrived = threading.Semaphore(0)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                fake.arrived.release()
                if hold_s is not None:
                    fake.release.wait(hold_s)
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up waiting
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

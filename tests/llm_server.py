"""A stand-in OpenAI-compatible chat server for the tests, run as a real process on 127.0.0.1.

It answers `POST /v1/chat/completions` from a table of canned behaviours, chosen by the first
entry whose `match` occurs in the conversation's last user message:

    answer     the assistant's content (default: the message, capitalised, with a full stop)
    status     answer every request with this HTTP status instead
    fail_first answer the first N matching requests with `fail_status` (default 500)
    sleep_s    wait this long before answering

`GET /stats` reports how many completions were asked for, the most that were in flight at
once, and the last request body, so tests can see what the client really sent.

    python tests/llm_server.py BEHAVIOURS.json [API_KEY]   # prints the port, then serves
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx


class _State:
    def __init__(self, behaviours: list[dict], api_key: str | None):
        self.behaviours, self.api_key = behaviours, api_key
        self.lock = threading.Lock()
        self.requests = self.in_flight = self.max_in_flight = 0
        self.seen: dict[int, int] = {}  # behaviour index -> requests that matched it
        self.last_body: dict = {}


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the test output quiet
            pass

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            with state.lock:
                self._send(
                    200,
                    {
                        "requests": state.requests,
                        "max_in_flight": state.max_in_flight,
                        "last_body": state.last_body,
                    },
                )

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/v1/chat/completions":
                return self._send(404, {"error": f"no route {self.path}"})
            if state.api_key and self.headers.get("Authorization") != f"Bearer {state.api_key}":
                return self._send(401, {"error": "bad or missing API key"})
            text = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
            index, rule = next(
                ((i, b) for i, b in enumerate(state.behaviours) if b["match"] in text),
                (-1, {}),
            )
            with state.lock:
                state.requests += 1
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
                state.seen[index] = state.seen.get(index, 0) + 1
                state.last_body = body
                attempt = state.seen[index]
            try:
                time.sleep(rule.get("sleep_s", 0))
                if "status" in rule:
                    return self._send(rule["status"], {"error": "canned failure"})
                if attempt <= rule.get("fail_first", 0):
                    return self._send(rule.get("fail_status", 500), {"error": "canned failure"})
                answer = rule.get("answer", text[:1].upper() + text[1:] + ".")
                self._send(
                    200,
                    {
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": answer},
                                "finish_reason": "stop",
                            }
                        ],
                    },
                )
            finally:
                with state.lock:
                    state.in_flight -= 1

    return Handler


class CannedLlmServer:
    """The server above in its own process, for a `with` block in a test."""

    def __init__(self, behaviours: list[dict], workdir: Path, api_key: str | None = None):
        table = workdir / "behaviours.json"
        table.write_text(json.dumps(behaviours))
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(table), *([api_key] if api_key else [])],
            stdout=subprocess.PIPE,
            text=True,
        )
        port = int(self.process.stdout.readline())
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def stats(self) -> dict:
        return httpx.get(self.base_url.replace("/v1", "/stats")).json()

    def __enter__(self) -> CannedLlmServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.kill()
        self.process.wait()


def main(table: str, api_key: str | None = None) -> None:
    state = _State(json.loads(Path(table).read_text()), api_key)
    ThreadingHTTPServer.request_queue_size = 64  # the concurrency tests open many at once
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:])

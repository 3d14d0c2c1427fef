"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1 for the writer tests.

It speaks the documented protocol: ``POST /v1/chat/completions`` with a JSON body; with
``"stream": true`` the reply is ``text/event-stream`` chunks ``data: {"choices":[{"delta":
{"content": ...}}]}`` ending ``data: [DONE]``, otherwise one ``chat.completion`` JSON object.
What it answers is decided per request by ``server.script(request_body) -> Reply``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Reply:
    text: str = ""
    status: int = 200
    delay_s: float = 0.0  # before the status line (a hanging endpoint)
    chunk_delay_s: float = 0.0  # between streamed chunks
    error: str | None = None


def data_section(user: str) -> tuple[str, str]:
    """(inside, outside) of the first <资料> ... </资料> section, parsed the naive way a model
    might: up to the FIRST closing tag."""
    m = re.search(r"<资料>(.*?)</资料>", user, re.S)
    if not m:
        return "", user
    return m.group(1), user[: m.start()] + user[m.end():]


def passages(user: str) -> dict[int, str]:
    inside, _ = data_section(user)
    out = {}
    for m in re.finditer(r'<段落 编号="(\d+)">\n来源：[^\n]*\n(.*?)\n</段落>', inside, re.S):
        out[int(m.group(1))] = m.group(2)
    return out


class FakeLLM:
    def __init__(self, script: Callable[[dict], Reply] | None = None):
        self.script = script or (lambda body: Reply("好的[1]。"))
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                fake.requests.append(body)
                fake.headers.append(dict(self.headers))
                reply = fake.script(body)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.status >= 400:
                    payload = json.dumps({"error": {"message": reply.error or "scripted error", "type": "test"}}).encode()
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-cache")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    pieces = re.findall(r".{1,3}", reply.text, re.S)  # ~ tokens
                    try:
                        for p in pieces:
                            chunk = {"id": "c1", "object": "chat.completion.chunk", "model": body.get("model"),
                                     "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
                            self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
                            self.wfile.flush()
                            if reply.chunk_delay_s:
                                time.sleep(reply.chunk_delay_s)
                        last = {"id": "c1", "object": "chat.completion.chunk", "choices": [
                            {"index": 0, "delta": {}, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 100, "completion_tokens": len(pieces), "total_tokens": 100 + len(pieces)}}
                        self.wfile.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    self.close_connection = True
                    return
                payload = json.dumps({
                    "id": "c1", "object": "chat.completion", "model": body.get("model"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
                }, ensure_ascii=False).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

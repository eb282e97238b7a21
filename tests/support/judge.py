"""A small OpenAI-compatible judge on 127.0.0.1 for tests: a real HTTP server (a thread of this
process) that answers ``POST /v1/chat/completions`` from the prompt it is sent.

It reads ``<reference>...</reference>`` and ``<answer>...</answer>`` from the judge prompt and replies
``Score: 10`` when they are equal, ``Score: 2`` when not; so a judge prompt that does not carry the
answer, or a gate that sends the wrong one, gets the wrong scores. ``mode`` makes it misbehave
(``no-score``: a reply with no score; ``error``: a 500). It refuses a request without the bearer
token ``key`` (when one is set) with a 401, and records every prompt it was sent.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

JUDGE_PROMPT = (
    "Question: {{input}}\n<reference>{{reference}}</reference>\n<answer>{{output}}</answer>\n"
    "Score the answer from 0 to 10; end with 'Score: N'."
)
_TAG = re.compile(r"<(reference|answer)>(.*?)</\1>", re.DOTALL)


@dataclass
class JudgeServer:
    key: str | None = None
    mode: str = "ok"
    prompts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                if judge.key and self.headers.get("authorization") != f"Bearer {judge.key}":
                    self._send(401, {"error": {"message": "bad key"}})
                    return
                if self.path != "/v1/chat/completions" or judge.mode == "error":
                    self._send(500 if judge.mode == "error" else 404, {"error": {"message": "no"}})
                    return
                prompt = body["messages"][-1]["content"]
                judge.prompts.append(prompt)
                tags = dict(_TAG.findall(prompt))
                reply = "Score: 10" if tags.get("reference") == tags.get("answer") else "Score: 2"
                if judge.mode == "no-score":
                    reply = "The answer is fine."
                self._send(
                    200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": reply}}]}
                )

            def _send(self, status: int, doc: dict[str, Any]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> JudgeServer:
        self.thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

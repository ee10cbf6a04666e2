"""Loopback HTTP servers that speak the Gemini and OpenAI chat-completions wire formats (test doubles).

A server runs a script: `script(n, body) -> Reply` for the n-th request (0-based), so a test can
stage 429 storms, 500s, slow replies, malformed bodies and truncated outputs, and count what
arrived. Servers bind 127.0.0.1 on a free port, serve from a bounded number of threads, and stop
themselves after `lifetime_s` even if a test forgets to.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default listen backlog of 5 resets connections at 64-way concurrency
    daemon_threads = True
    block_on_close = False


ANSWER_TEXT = '선지를 하나씩 검토하면 ①이 지문과 일치한다.\n{"Answer":"1"}'


@dataclass
class Reply:
    status: int = 200
    text: str = ANSWER_TEXT
    finish: str | None = None  # None: the format's normal stop (STOP / stop)
    delay: float = 0.0
    raw: bytes | None = None  # sent as-is instead of a well-formed body
    headers: dict[str, str] = field(default_factory=dict)
    reasoning: str | None = None
    blocked: str | None = None  # Gemini: the prompt was blocked (no candidates)


def ok(n: int, body: dict[str, Any]) -> Reply:
    return Reply()


def gemini_body(r: Reply, model: str) -> dict[str, Any]:
    usage = {"promptTokenCount": 11, "candidatesTokenCount": 7, "totalTokenCount": 18}
    if r.blocked:
        return {"promptFeedback": {"blockReason": r.blocked}, "usageMetadata": usage, "modelVersion": model}
    parts = ([{"text": r.reasoning, "thought": True}] if r.reasoning else []) + [{"text": r.text}]
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": r.finish or "STOP",
                            "index": 0}], "usageMetadata": usage, "modelVersion": model}


def openai_body(r: Reply, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": r.text}
    if r.reasoning:
        message["reasoning_content"] = r.reasoning
    return {"id": "cmpl-1", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": r.finish or "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}


def error_body(wire: str, status: int) -> dict[str, Any]:
    if wire == "gemini":
        return {"error": {"code": status, "message": f"scripted {status}", "status": "SCRIPTED"}}
    return {"error": {"message": f"scripted {status}", "type": "scripted", "code": None}}


class Loopback:
    """`with Loopback("openai", script) as srv:` then point a model at srv.base_url."""

    def __init__(self, wire: str, script: Callable[[int, dict[str, Any]], Reply] = ok,
                 max_threads: int = 128, lifetime_s: float = 120.0):
        assert wire in ("gemini", "openai")
        self.wire, self.script = wire, script
        self.count = 0
        self.requests: list[dict[str, Any]] = []  # {"path", "headers", "body"} in arrival order
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.slots = threading.BoundedSemaphore(max_threads)
        self.server = _Server(("127.0.0.1", 0), self._handler())
        self.server.handle_error = lambda request, address: None  # clients hanging up is part of the script
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.timer = threading.Timer(lifetime_s, self.stop)
        self.timer.daemon = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}" + ("/v1" if self.wire == "openai" else "")

    def __enter__(self) -> Loopback:
        self.thread.start()
        self.timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        if not self.stopping.is_set():
            self.stopping.set()
            self.timer.cancel()
            self.server.shutdown()
            self.server.server_close()

    def _respond(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes, float]:
        with self.lock:
            n = self.count
            self.count += 1
        reply = self.script(n, body)
        model = path.split("/models/")[-1].split(":")[0] if self.wire == "gemini" else body.get("model", "")
        if reply.raw is not None:
            payload = reply.raw
        elif reply.status != 200:
            payload = json.dumps(error_body(self.wire, reply.status)).encode()
        else:
            make = gemini_body if self.wire == "gemini" else openai_body
            payload = json.dumps(make(reply, model), ensure_ascii=False).encode()
        return reply.status, reply.headers, payload, reply.delay

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs expect
            disable_nagle_algorithm = True  # headers and body go out separately: no 40 ms delayed-ACK stall

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                if not srv.slots.acquire(blocking=False):
                    return self._send(503, {}, b'{"error": {"message": "busy"}}')
                try:
                    with srv.lock:
                        srv.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    status, headers, payload, delay = srv._respond(self.path, body)
                    if delay and srv.stopping.wait(delay):
                        return
                    self._send(status, headers, payload)
                finally:
                    srv.slots.release()

            def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to tell it

        return Handler


def answer_batch_file(src: str, dst: str, script: Callable[[int, dict[str, Any]], Reply] = ok) -> int:
    """Play the batch engine (OpenAI Batch API / `vllm run-batch`) outside the product: answer each
    request line of `src` with `script(n, body)` and write the batch output JSONL to `dst`
    ({"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}). Returns lines."""
    n = 0
    with open(src, encoding="utf-8") as f, open(dst, "w", encoding="utf-8") as out:
        for n, line in enumerate(f, 1):
            req = json.loads(line)
            assert req["method"] == "POST" and req["url"] == "/v1/chat/completions"
            reply = script(n - 1, req["body"])
            body = (openai_body(reply, req["body"]["model"]) if reply.status == 200
                    else error_body("openai", reply.status))
            out.write(json.dumps({"id": f"batch_req_{n}", "custom_id": req["custom_id"],
                                  "response": {"status_code": reply.status, "request_id": f"req_{n}",
                                               "body": body}, "error": None}, ensure_ascii=False) + "\n")
    return n


class GeminiBatchLoopback:
    """A loopback server for the Gemini Batch API calls google-genai makes: batches.create
    (`POST /v1beta/models/M:batchGenerateContent`, inlined requests or an uploaded file), batches.get
    (`GET /v1beta/batches/ID`), files.upload (the resumable protocol: start, then upload+finalize) and
    files.download (`GET …/files/ID:download`). A batch stays pending (then running) until
    `release` is set; then it succeeds with `script(n, request)` answering the n-th request. Live
    calls (`:generateContent`) are answered too and counted in `live`, so a test sees what was paid."""

    def __init__(self, script: Callable[[int, dict[str, Any]], Reply] = ok, lifetime_s: float = 120.0,
                 end_state: str = "BATCH_STATE_SUCCEEDED"):
        self.script, self.end_state = script, end_state
        self.creates: list[dict[str, Any]] = []  # the create bodies, in order
        self.gets = 0
        self.live = 0
        self.uploads: dict[str, bytes] = {}  # files/ID -> content
        self.downloads: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), self._handler())
        self.server.handle_error = lambda request, address: None
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.timer = threading.Timer(lifetime_s, self.stop)
        self.timer.daemon = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> GeminiBatchLoopback:
        self.thread.start()
        self.timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        self.timer.cancel()
        self.server.shutdown()
        self.server.server_close()

    def _operation(self, name: str) -> dict[str, Any]:
        b = self.batches[name]
        if not self.release.is_set():
            state = "BATCH_STATE_PENDING" if b["gets"] < 2 else "BATCH_STATE_RUNNING"
        else:
            state = self.end_state
        b["gets"] += 1
        meta: dict[str, Any] = {"@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
                                "name": name, "model": b["model"], "displayName": b["display"], "state": state}
        if state == "BATCH_STATE_SUCCEEDED":
            answers = []
            for i, (key, req) in enumerate(b["requests"]):
                r = self.script(i, req)
                answers.append({"key": key, "response": gemini_body(r, b["model"])} if r.status == 200 else
                               {"key": key, "error": {"code": r.status, "message": f"scripted {r.status}"}})
            if b["file"]:
                out = f"files/out-{name.split('/')[-1]}"
                self.downloads[out] = "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in answers).encode()
                meta["output"] = {"responsesFile": out}
            else:
                meta["output"] = {"inlinedResponses": {"inlinedResponses": [
                    {**{k: v for k, v in a.items() if k != "key"}, "metadata": {"key": a["key"]}} for a in answers]}}
        return {"name": name, "metadata": meta, "done": state != "BATCH_STATE_PENDING" and self.release.is_set()}

    def _create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        model = "models/" + path.split("/models/")[-1].split(":")[0]
        source = body["batch"]["inputConfig"]
        if "fileName" in source:
            lines = self.uploads[source["fileName"]].decode("utf-8").splitlines()
            requests = [(x["key"], x["request"]) for x in map(json.loads, lines)]
        else:
            requests = [(r.get("metadata", {}).get("key"), r["request"]) for r in source["requests"]["requests"]]
        name = f"batches/b{len(self.creates) + 1}"
        self.creates.append(body)
        self.batches[name] = {"model": model, "display": body["batch"].get("displayName"), "requests": requests,
                              "file": "fileName" in source, "gets": 0}
        return self._operation(name)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                with srv.lock:
                    if path.endswith(":batchGenerateContent"):
                        return self._json(200, srv._create(path, json.loads(raw)))
                    if path.endswith(":generateContent"):
                        srv.live += 1
                        model = path.split("/models/")[-1].split(":")[0]
                        return self._json(200, gemini_body(srv.script(srv.live - 1, json.loads(raw)), model))
                    if path == "/upload/v1beta/files":  # resumable upload: start
                        sid = f"s{len(srv.uploads) + 1}"
                        srv.uploads[f"files/{sid}"] = b""
                        return self._json(200, {}, {"x-goog-upload-url": f"{srv.base_url}/upload-session/{sid}"})
                    if path.startswith("/upload-session/"):
                        name = f"files/{path.rsplit('/', 1)[-1]}"
                        srv.uploads[name] += raw
                        final = "finalize" in (self.headers.get("X-Goog-Upload-Command") or "")
                        return self._json(200, {"file": {"name": name, "mimeType": "jsonl", "state": "ACTIVE",
                                                         "sizeBytes": str(len(srv.uploads[name]))}},
                                          {"X-Goog-Upload-Status": "final" if final else "active"})
                self._json(404, {"error": {"code": 404, "message": f"no route {path}", "status": "NOT_FOUND"}})

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                with srv.lock:
                    if "/batches/" in path:
                        srv.gets += 1
                        name = "batches/" + path.rsplit("/", 1)[-1]
                        if name in srv.batches:
                            return self._json(200, srv._operation(name))
                    if path.endswith(":download"):
                        name = "files/" + path.rsplit("/", 1)[-1].removesuffix(":download")
                        if name in srv.downloads:
                            return self._send(200, srv.downloads[name], {}, "application/octet-stream")
                self._json(404, {"error": {"code": 404, "message": f"no route {path}", "status": "NOT_FOUND"}})

            def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
                self._send(status, json.dumps(obj, ensure_ascii=False).encode(), headers or {}, "application/json")

            def _send(self, status: int, payload: bytes, headers: dict[str, str], ctype: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler

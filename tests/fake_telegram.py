"""A fake Telegram Bot API server on 127.0.0.1 for tests of the real client.

It behaves like Telegram where the bot depends on it: ``getUpdates`` with
offsets and a long-poll timeout; ``sendMessage`` refusing text over 4,096
characters (UTF-16, after entity parsing) and malformed or unsupported HTML
with 400 "can't parse entities"; ``callback_data`` over 64 bytes refused;
429 with ``retry_after`` and 5xx answers on demand. Every call is recorded.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

BOT_ID = 777000111
BOT_USERNAME = "newsqa_test_bot"
ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
                "span", "tg-spoiler", "blockquote", "tg-emoji"}
_TOKEN = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s[^<>]*)?)>|&(#[0-9]+|#x[0-9a-fA-F]+|[a-zA-Z]+);|[<>&]")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


class EntityError(ValueError):
    """The text is not valid Telegram HTML."""


def parse_html(text: str) -> str:
    """Telegram's HTML parse mode: the visible text, or EntityError like Telegram's."""
    out, stack, pos = [], [], 0
    for m in _TOKEN.finditer(text):
        out.append(text[pos:m.start()])
        pos = m.end()
        whole = m.group(0)
        if m.group(2):
            closing, name = m.group(1) == "/", m.group(2).lower()
            if name not in ALLOWED_TAGS:
                raise EntityError(f"Unsupported start tag \"{name}\" at byte offset {m.start()}")
            if closing:
                if not stack or stack[-1] != name:
                    raise EntityError(f"Unmatched end tag at byte offset {m.start()}, "
                                      f"expected \"</{stack[-1] if stack else ''}>\"")
                stack.pop()
            else:
                stack.append(name)
        elif m.group(4):
            ent = m.group(4)
            if ent.startswith("#x"):
                out.append(chr(int(ent[2:], 16)))
            elif ent.startswith("#"):
                out.append(chr(int(ent[1:])))
            elif ent in _NAMED:
                out.append(_NAMED[ent])
            else:
                raise EntityError(f"Unsupported HTML entity \"&{ent};\" at byte offset {m.start()}")
        elif whole in "<>&":
            raise EntityError(f"Unexpected \"{whole}\" at byte offset {m.start()}; "
                              f"must be escaped")
    out.append(text[pos:])
    if stack:
        raise EntityError(f"Can't find end tag corresponding to start tag \"{stack[-1]}\"")
    return "".join(out)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class Call:
    """One recorded Bot API request."""

    method: str
    params: dict[str, Any]
    token: str
    status: int = 200
    at: float = field(default_factory=time.monotonic)


class FakeTelegram:
    """The server; use as a context manager, then ``url`` is the ``--base-url``."""

    def __init__(self, token: str = "123456:TEST-token_abcdefghijklmnopqrstuvwxyz") -> None:
        self.token = token
        self.calls: list[Call] = []
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._failures: list[tuple[str, int, dict[str, Any]]] = []
        self._cond = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._server.handle_error = lambda *_: None  # clients hanging up at shutdown is normal
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle -------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/bot"

    def __enter__(self) -> FakeTelegram:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()

    _closed = False

    # -- what tests do -----------------------------------------------------------
    def push(self, **update: Any) -> int:
        """Queue an update (``message=...`` or ``callback_query=...``); returns its id."""
        with self._cond:
            uid = next(self._update_ids)
            self._updates.append({"update_id": uid, **update})
            self._cond.notify_all()
            return uid

    def message(self, text: str | None, user: int = 1, chat: int | None = None,
                chat_type: str = "private", **extra: Any) -> int:
        """Queue a message from ``user`` in ``chat`` (default: the private chat); returns its id."""
        mid = next(self._message_ids)
        chat_id = user if chat is None else chat
        msg: dict[str, Any] = {
            "message_id": mid, "date": int(time.time()),
            "chat": {"id": chat_id, "type": chat_type,
                     **({"title": "测试群"} if chat_type != "private" else {"first_name": "U"})},
            "from": {"id": user, "is_bot": False, "first_name": f"user{user}"},
        }
        if text is not None:
            msg["text"] = text
            if text.startswith("/"):
                cmd = text.split()[0]
                msg["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(cmd)}]
        msg.update(extra)
        self.push(message=msg)
        return mid

    def fail_next(self, method: str, status: int, **params: Any) -> None:
        """Answer the next call of ``method`` with an error (429 takes ``retry_after``)."""
        with self._cond:
            self._failures.append((method, status, params))

    def sent(self, method: str = "sendMessage") -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method and c.status == 200]

    def wait_for(self, predicate: Any, timeout: float = 20.0) -> None:
        """Block until ``predicate(self)`` holds; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out; calls: {[c.method for c in self.calls]}")
                self._cond.wait(min(left, 0.2))

    # -- the API ---------------------------------------------------------------
    def _dispatch(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, dict]:
        with self._cond:
            for i, (name, status, extra) in enumerate(self._failures):
                if name == method:
                    del self._failures[i]
                    self.calls.append(Call(method, params, token, status))
                    self._cond.notify_all()
                    return status, _error(status, extra)
        if token != self.token:
            self._record(method, params, token, 401)
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        if method == "getUpdates":
            return self._get_updates(params, token)
        handler = getattr(self, f"_api_{method}", None)
        try:
            result = handler(params) if handler else True
        except EntityError as exc:
            self._record(method, params, token, 400)
            return 400, {"ok": False, "error_code": 400,
                         "description": f"Bad Request: can't parse entities: {exc}"}
        except ValueError as exc:
            self._record(method, params, token, 400)
            return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {exc}"}
        self._record(method, params, token, 200)
        return 200, {"ok": True, "result": result}

    def _record(self, method: str, params: dict[str, Any], token: str, status: int) -> None:
        with self._cond:
            self.calls.append(Call(method, params, token, status))
            self._cond.notify_all()

    def _get_updates(self, params: dict[str, Any], token: str) -> tuple[int, dict]:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        deadline = time.monotonic() + timeout
        with self._cond:
            if offset:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and not self._closed and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            batch = list(self._updates[: int(params.get("limit") or 100)])
        self._record("getUpdates", params, token, 200)
        return 200, {"ok": True, "result": batch}

    def _api_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"id": BOT_ID, "is_bot": True, "first_name": "newsqa", "username": BOT_USERNAME,
                "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False}

    def _api_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        text = params.get("text") or ""
        visible = parse_html(text) if params.get("parse_mode") == "HTML" else text
        if not visible.strip():
            raise ValueError("message text is empty")
        if utf16_len(visible) > 4096:
            raise ValueError("message is too long")
        markup = params.get("reply_markup")
        if markup:
            for row in markup.get("inline_keyboard", []):
                for button in row:
                    data = button.get("callback_data")
                    if data is not None and not 1 <= len(data.encode()) <= 64:
                        raise ValueError("BUTTON_DATA_INVALID")
        return {"message_id": next(self._message_ids), "date": int(time.time()),
                "chat": {"id": int(params["chat_id"]), "type": "private"},
                "from": self._api_getMe({}), "text": visible}


def _error(status: int, extra: dict[str, Any]) -> dict[str, Any]:
    if status == 429:
        ra = int(extra.get("retry_after", 1))
        return {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {ra}",
                "parameters": {"retry_after": ra}}
    if status == 400:
        return {"ok": False, "error_code": 400,
                "description": extra.get("description", "Bad Request: can't parse entities: forced")}
    return {"ok": False, "error_code": status, "description": "Internal Server Error"}


def _handler(fake: FakeTelegram) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            m = re.fullmatch(r"/bot([^/]+)/(\w+)", self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            if not m:
                return self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            ctype = self.headers.get("Content-Type", "")
            params: dict[str, Any] = json.loads(body or "{}") if "json" in ctype else {}
            if not params:
                for key, value in parse_qsl(body, keep_blank_values=True):
                    try:  # the client sends structured fields as JSON strings
                        params[key] = json.loads(value) if value[:1] in "{[" else value
                    except json.JSONDecodeError:
                        params[key] = value
            status, payload = fake._dispatch(m.group(1), m.group(2), params)
            self._reply(status, payload)

        do_GET = do_POST

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


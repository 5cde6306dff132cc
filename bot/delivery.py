"""Talking to the Bot API reliably: sending, retries, typing, rate limits, token redaction.

Everything here is independent of what newsqa answers; :mod:`bot.telegram` holds
the handlers that decide what to say.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from telegram import InlineKeyboardMarkup, Message, ReplyParameters
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError

from . import render

log = logging.getLogger("newsqa.telegram")
T = TypeVar("T")


class RateLimiter:
    """At most ``limit`` events per ``window`` seconds per key (sliding window)."""

    def __init__(self, limit: int, window: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._events: dict[int, deque[float]] = {}

    def check(self, key: int) -> float:
        """Record an event for ``key``; 0 if allowed, else the seconds until it would be."""
        if not self.limit:
            return 0.0
        now = self._clock()
        events = self._events.setdefault(key, deque())
        while events and now - events[0] >= self.window:
            events.popleft()
        if len(events) >= self.limit:
            return self.window - (now - events[0])
        events.append(now)
        if len(self._events) > 10_000:  # forget idle users so memory stays bounded
            self._events = {k: v for k, v in self._events.items() if v and now - v[-1] < self.window}
        return 0.0


class TokenFilter(logging.Filter):
    """Replaces the bot token (and anything shaped like one) in log records, and an update
    by its id: users' messages are never logged, at any level.

    httpx logs request URLs at INFO and python-telegram-bot the base URL at
    DEBUG; both contain the token.
    """

    _SHAPE = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{30,}\b")

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def redact(self, text: str) -> str:
        if self.token:
            text = text.replace(self.token, "<token>")
        return self._SHAPE.sub("<token>", text)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            # python-telegram-bot at DEBUG: "Processing update %s" (the whole Update), and every
            # Bot API call's parameters and return value (getUpdates returns the messages).
            if record.name.startswith("telegram") and "Bot API endpoint" in str(record.msg):
                args = (*args[:1], *("<omitted>" for _ in args[1:]))
            record.args = tuple(f"update {a.update_id}" if hasattr(a, "update_id") and
                                hasattr(a, "effective_message") else a for a in args)
        record.msg, record.args = self.redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


def install_token_filter(token: str, handlers: list[logging.Handler] | None = None) -> TokenFilter:
    """Attach a :class:`TokenFilter` to ``handlers`` (default: the root logger's)."""
    flt = TokenFilter(token)
    for handler in handlers if handlers is not None else logging.getLogger().handlers:
        handler.addFilter(flt)
    return flt


def article_hash(article_id: str) -> str:
    return "#" + hashlib.sha1(article_id.encode()).hexdigest()[:16]


def encode_ref(article: str, paragraph: int, start: int | None = None,
               end: int | None = None) -> str:
    """Button data naming a cited passage; stable across restarts, at most 64 bytes."""
    tail = f"{paragraph}:{start if start is not None else ''}:{end if end is not None else ''}"
    data = f"p:{article}:{tail}"
    return data if len(data.encode()) <= 64 else f"p:{article_hash(article)}:{tail}"


def decode_ref(data: str) -> tuple[str, int, tuple[int, int] | None] | None:
    """``(article key, paragraph, quote offsets)`` from button data, None if malformed."""
    if not data.startswith("p:"):
        return None
    parts = data[2:].rsplit(":", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    key, para, start, end = parts
    quote = (int(start), int(end)) if start.isdigit() and end.isdigit() else None
    return key, int(para), quote


# --- sending -------------------------------------------------------------------

async def _retrying(call: Callable[[], Awaitable[T]], retries: int) -> T:
    """Run a Bot API call, waiting out flood limits and retrying network errors."""
    for attempt in range(retries + 1):
        try:
            return await call()
        except (BadRequest, Forbidden, InvalidToken):
            raise  # the request itself is wrong: sending it again cannot help
        except RetryAfter as exc:
            if attempt == retries:
                raise
            delay = _seconds(exc)
            log.warning("Telegram flood limit: waiting %.1f s before retrying", delay)
            await asyncio.sleep(delay)
        except NetworkError as exc:  # includes TimedOut and 5xx answers
            # A lost answer is worse than a rare duplicate, so sends are retried too.
            if attempt == retries:
                raise
            log.warning("network error (%s); retrying", exc)
            await asyncio.sleep(0.5 * 2 ** attempt)
    raise AssertionError("unreachable")


def _seconds(exc: RetryAfter) -> float:
    value = exc._retry_after  # a timedelta; the public property warns while PTB migrates
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


async def send_html(bot: Any, chat_id: int, text: str, *, reply_to: int | None = None,
                    markup: InlineKeyboardMarkup | None = None, retries: int = 3) -> list[Message]:
    """Send Telegram HTML, split to fit the limit, falling back to plain text if rejected."""
    pieces = render.split_html(text)
    sent = []
    for i, piece in enumerate(pieces):
        kwargs: dict[str, Any] = {"chat_id": chat_id}
        if i == len(pieces) - 1 and markup is not None:
            kwargs["reply_markup"] = markup
        if i == 0 and reply_to is not None:
            kwargs["reply_parameters"] = ReplyParameters(reply_to, allow_sending_without_reply=True)
        try:
            msg = await _retrying(lambda p=piece, kw=kwargs: bot.send_message(
                text=p, parse_mode=ParseMode.HTML, **kw), retries)
        except BadRequest as exc:
            if "parse entities" not in str(exc).lower():
                raise
            log.warning("Telegram rejected the formatting (%s); resending as plain text", exc)
            msg = await _retrying(lambda p=piece, kw=kwargs: bot.send_message(
                text=render.plain_text(p), **kw), retries)
        sent.append(msg)
    return sent


@contextlib.asynccontextmanager
async def typing(bot: Any, chat_id: int) -> AsyncIterator[None]:
    """Show "typing…" until the block ends (Telegram clears it after about 5 s)."""
    async def keep() -> None:
        while True:
            await asyncio.sleep(4.5)
            with contextlib.suppress(TelegramError):
                await bot.send_chat_action(chat_id, ChatAction.TYPING)

    with contextlib.suppress(TelegramError):
        await bot.send_chat_action(chat_id, ChatAction.TYPING)
    task = asyncio.create_task(keep())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

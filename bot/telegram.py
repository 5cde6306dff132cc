"""``newsqa telegram``: cited answers in Telegram chats (python-telegram-bot, long polling).

Handlers only format what :mod:`retrieval` returns. Retrieval runs in a
worker thread so one slow question never stalls the others; updates are
handled concurrently, one at a time per user.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import logging
import re
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    Update,
)
from telegram.constants import ChatType
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from retrieval import Answer, Article, ConfigError, NewsqaError, QuestionError, Searcher
from retrieval import ask as compose_answer
from retrieval.conversation import Conversation, Reply, converse
from retrieval.text import Script, detect_script, has_cjk, split_sentences, to_script, to_simplified

from . import render
from .delivery import (
    RateLimiter,
    article_hash,
    decode_ref,
    encode_ref,
    send_html,
    typing,
)
from .journal import Journal, journaling_request

log = logging.getLogger("newsqa.telegram")

# Simplified originals; every reply goes out in the asker's script.
TEXTS = {
    "start": "你好！我回答关于下面 {n} 篇新闻文章的问题，回答全部引用原文，并注明标题、媒体、日期和段落。"
             "文章没有提到的，我会直接说没有，不会猜。\n\n可以这样问：\n{examples}\n\n"
             "/sources 查看文章列表，/help 查看用法。",
    "help": "直接发来问题即可（简体或繁体都行），我会用你的字体回答。\n"
            "在群组里：@{bot} 加问题、回复我的消息，或者用 /ask 问题。\n\n"
            "回答里的 [n] 是引用编号，粗体是最可能的答案；点下面的按钮可以看被引用段落的原文。\n\n"
            "可以接着问：“她任职多少年了？”“税收呢？”，我会按上文理解，并说明是怎么理解的；"
            "问题有几种可能时，我会列出来让你选。30 分钟不说话，对话就会忘掉。\n\n"
            "/ask 问题 — 提问\n/more — 上一个问题的更多内容\n/new — 开始新的对话\n"
            "/sources — 文章列表\n/help — 本说明",
    "ask_usage": "请在 /ask 后面写上问题，例如：/ask {example}",
    "unsupported": "目前只支持文字提问，请把问题用文字发给我。",
    "too_long": "问题太长了（{length} 字），请缩短到 {limit} 字以内再问。",
    "no_words": "这条消息里没有文字内容，请用中文（或英文）提问。",
    "unknown": "我不认识这个命令，发送 /help 查看可用的命令。",
    "refused": "抱歉，这个机器人只对授权的用户和群组开放。",
    "rate": "问得太快了，请 {seconds} 秒后再问。",
    "error": "抱歉，处理这条消息时出错了，请稍后再试。",
    "gone": "这条引用所在的文章已不在索引里了。",
    "new": "好的，重新开始。之前的对话已经忘掉了。",
    "expired": "这个选项已经过期了，请重新提问。",
}
COMMANDS = (("ask", "提问：/ask 问题"), ("more", "上一个问题的更多内容"), ("new", "开始新的对话"),
            ("sources", "查看文章列表"), ("help", "使用说明"), ("start", "开始：机器人能回答什么"))
_HANT_LOCALES = ("zh-hant", "zh-tw", "zh-hk", "zh-mo")


@dataclass(frozen=True)
class BotConfig:
    """How the bot runs; built at the edge (CLI flags and environment).

    Attributes:
        token: Bot API token from @BotFather.
        base_url: Bot API address for a self-hosted server (``.../bot``), None for Telegram's.
        allowed_ids: User and chat ids that may use the bot; empty means everyone.
        rate_limit: Questions per user per ``rate_window`` seconds; 0 turns the limit off.
        rate_window: Length of the rate-limit window in seconds.
        send_retries: Retries of a send after a flood limit (429) or network error.
        poll_timeout: Long-poll timeout of ``getUpdates`` in seconds.
        forget_after: Seconds of silence after which a conversation is forgotten.
        journal: SQLite file journaling received updates (None: no journal, as in tests
            that do not test it).
    """

    token: str
    base_url: str | None = None
    allowed_ids: frozenset[int] = frozenset()
    rate_limit: int = 5
    rate_window: float = 60.0
    send_retries: int = 3
    poll_timeout: int = 30
    forget_after: float = 1800.0
    journal: str | None = None

    def __post_init__(self) -> None:
        if not self.token or re.search(r"\s", self.token) or ":" not in self.token:
            raise ConfigError("the bot token is malformed: expected the '123456:ABC…' token "
                              "@BotFather gives (set TELEGRAM_BOT_TOKEN or --token-file)")
        if self.rate_limit < 0 or self.rate_window <= 0:
            raise ConfigError("the rate limit must be N/SECONDS with N >= 0 and SECONDS > 0")


@dataclass
class BotState:
    """What the handlers share: the searcher, the settings and per-user bookkeeping."""

    searcher: Searcher
    config: BotConfig
    limiter: RateLimiter = field(init=False)
    locks: weakref.WeakValueDictionary[int, asyncio.Lock] = field(
        default_factory=weakref.WeakValueDictionary)
    by_hash: dict[str, str] = field(init=False)
    examples: list[str] = field(init=False)
    # Per chat, and per user in groups: (conversation, when last used). Memory only.
    conversations: dict[tuple[int, int], tuple[Conversation, float]] = field(default_factory=dict)
    journal: Journal | None = None

    def done(self, update: object) -> None:
        """Mark ``update`` handled in the journal (when there is one)."""
        if self.journal is not None and isinstance(update, Update):
            self.journal.done(update.update_id)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.config.rate_limit, self.config.rate_window)
        self.by_hash = {article_hash(a): a for a in self.searcher.index.articles}
        self.examples = example_questions(self.searcher)

    def lock_for(self, user: int) -> asyncio.Lock:
        lock = self.locks.get(user)
        if lock is None:
            lock = self.locks[user] = asyncio.Lock()
        return lock

    def conversation(self, key: tuple[int, int]) -> Conversation:
        """The conversation of ``key`` (chat, user), or a new one after the silence limit."""
        now = time.monotonic()
        if len(self.conversations) > 10_000:  # forget the silent ones before growing further
            self.conversations = {k: v for k, v in self.conversations.items()
                                  if now - v[1] < self.config.forget_after}
        state, used = self.conversations.get(key, (Conversation(), now))
        return state if now - used < self.config.forget_after else Conversation()

    def keep(self, key: tuple[int, int], state: Conversation) -> None:
        self.conversations[key] = (state, time.monotonic())

    def article(self, key: str) -> Article | None:
        key = self.by_hash.get(key, key)
        return self.searcher.index.articles.get(key)


# --- handlers -------------------------------------------------------------------

Context = ContextTypes.DEFAULT_TYPE


def _state(context: Context) -> BotState:
    return context.bot_data["newsqa"]


def say(key: str, script: Script, **values: Any) -> str:
    """A UI text in ``script``, HTML-escaped."""
    return html.escape(to_script(TEXTS[key].format(**values), script), quote=False)


def script_of(update: Update, text: str = "") -> Script:
    """The asker's script: from their text, else from their Telegram language."""
    if has_cjk(text):
        return detect_script(text)
    user = update.effective_user
    lang = (user.language_code or "").lower() if user else ""
    return "hant" if lang.startswith(_HANT_LOCALES) else "hans"


def _addressed(message: Message, bot: Any) -> str | None:
    """The question in ``message`` if it is meant for the bot, else None."""
    text = message.text or ""
    if message.chat.type == ChatType.PRIVATE:
        return text
    mentions = message.parse_entities([MessageEntity.MENTION, MessageEntity.TEXT_MENTION])
    mine = [e for e, t in mentions.items()
            if (e.type == MessageEntity.MENTION and t.lower() == f"@{(bot.username or '').lower()}")
            or (e.user is not None and e.user.id == bot.id)]
    reply = message.reply_to_message
    if not mine and not (reply and reply.from_user and reply.from_user.id == bot.id):
        return None
    utf16 = text.encode("utf-16-le")  # entity offsets count UTF-16 code units
    for entity in sorted(mine, key=lambda e: -e.offset):
        utf16 = utf16[:entity.offset * 2] + utf16[(entity.offset + entity.length) * 2:]
    text = utf16.decode("utf-16-le")
    return text.strip()


async def gate(update: Update, context: Context) -> None:
    """Refuse updates from users and chats outside the allowlist (when one is set)."""
    allowed = _state(context).config.allowed_ids
    if not allowed:
        return
    user, chat = update.effective_user, update.effective_chat
    if {x.id for x in (user, chat) if x is not None} & allowed:
        return
    # Their message text is deliberately not logged.
    log.warning("refused update %s from user %s in chat %s: not in the allowlist",
                update.update_id, user.id if user else None, chat.id if chat else None)
    _state(context).done(update)
    script = script_of(update)
    if update.callback_query:
        await update.callback_query.answer(to_script(TEXTS["refused"], script), show_alert=True)
    elif update.effective_message and chat and (
            chat.type == ChatType.PRIVATE or _addressed(update.effective_message, context.bot)
            is not None or (update.effective_message.text or "").startswith("/")):
        await send_html(context.bot, chat.id, say("refused", script),
                        reply_to=update.effective_message.message_id)
    raise ApplicationHandlerStop


async def start(update: Update, context: Context) -> None:
    index = _state(context).searcher.index
    script = script_of(update)
    examples = "\n".join(f"• {q}" for q in _state(context).examples)
    body = say("start", script, n=len(index.articles), examples=examples)
    await send_html(context.bot, update.effective_chat.id,
                    body + "\n\n" + render.sources_html(index, script))


async def help_command(update: Update, context: Context) -> None:
    script = script_of(update)
    await send_html(context.bot, update.effective_chat.id,
                    say("help", script, bot=context.bot.username or "bot"))


async def sources(update: Update, context: Context) -> None:
    await send_html(context.bot, update.effective_chat.id,
                    render.sources_html(_state(context).searcher.index, script_of(update)))


async def ask(update: Update, context: Context) -> None:
    message = update.effective_message
    parts = (message.text or "").split(None, 1)
    question = parts[1].strip() if len(parts) > 1 else ""
    if not question:
        script = script_of(update)
        examples = _state(context).examples
        await send_html(context.bot, message.chat_id, say("ask_usage", script,
                        example=examples[0] if examples else "……？"), reply_to=message.message_id)
        return
    await answer_question(update, context, question)


async def on_text(update: Update, context: Context) -> None:
    question = _addressed(update.effective_message, context.bot)
    if question is not None:
        await answer_question(update, context, question)


async def unsupported(update: Update, context: Context) -> None:
    message = update.effective_message
    await send_html(context.bot, message.chat_id, say("unsupported", script_of(update)),
                    reply_to=message.message_id)


async def unknown_command(update: Update, context: Context) -> None:
    message = update.effective_message
    command = (message.text or "").split(None, 1)[0]
    if message.chat.type != ChatType.PRIVATE and not command.lower().endswith(
            f"@{(context.bot.username or '').lower()}"):
        return  # in a group, a bare /command may be meant for another bot
    await send_html(context.bot, message.chat_id, say("unknown", script_of(update)),
                    reply_to=message.message_id)


async def answer_question(update: Update, context: Context, question: str) -> None:
    """Check, rate-limit, answer off the event loop, and reply with citations."""
    state = _state(context)
    message = update.effective_message
    script = script_of(update, question)
    user = update.effective_user.id if update.effective_user else message.chat_id
    # Quick replies wait behind the user's earlier questions: replies come in question order.
    async with state.lock_for(user):
        try:
            state.searcher.check(question)
        except QuestionError as exc:
            key = exc.reason if exc.reason in ("too_long", "no_words") else "no_words"
            await send_html(context.bot, message.chat_id,
                            say(key, script, length=exc.length, limit=exc.limit),
                            reply_to=message.message_id)
            return
        wait = state.limiter.check(user)
        if wait:
            await send_html(context.bot, message.chat_id, say("rate", script, seconds=int(wait) + 1),
                            reply_to=message.message_id)
            return
        await _converse(update, context, question, message.chat_id, message.message_id, user,
                        locked=True)


async def _converse(update: Update, context: Context, question: str, chat_id: int,
                    reply_to: int | None, user: int, locked: bool = False) -> None:
    """Answer ``question`` within the asker's conversation and send the reply."""
    state = _state(context)
    key = (chat_id, user)
    lock = contextlib.nullcontext() if locked else state.lock_for(user)
    async with lock, typing(context.bot, chat_id):
        began = time.perf_counter()
        before = state.conversation(key)
        reply, after = await asyncio.to_thread(lambda: converse(state.searcher, before, question))
        state.keep(key, after)
        outcome = "choice" if reply.choices else "answered" if reply.answer and \
            reply.answer.answered else "declined"
        log.info("update %s: user %s, chat %s, %s%s in %.0f ms", update.update_id, user, chat_id,
                 outcome, " (follow-up)" if reply.rewritten else "",
                 1000 * (time.perf_counter() - began))
        await send_html(context.bot, chat_id, render.reply_html(reply, state.searcher.index),
                        reply_to=reply_to, markup=reply_buttons(reply, state.searcher.index.articles),
                        retries=state.config.send_retries)
        state.done(update)  # at once: a kill from here on does not answer it again


def reply_buttons(reply: Reply, articles: dict[str, Article]) -> InlineKeyboardMarkup | None:
    """A button per choice (``c:<n>`` picks it), else the answer's citation buttons."""
    if reply.choices:
        return InlineKeyboardMarkup([[InlineKeyboardButton(_short(q, 40), callback_data=f"c:{i}")]
                                     for i, q in enumerate(reply.choices, 1)])
    return buttons(reply.answer, articles) if reply.answer is not None else None


async def pick_choice(update: Update, context: Context) -> None:
    """A choice button: ask the full question it stands for, in the presser's conversation."""
    query = update.callback_query
    chat_id = query.message.chat.id if query.message else query.from_user.id
    user = query.from_user.id
    n = (query.data or "").removeprefix("c:")
    choices = _state(context).conversation((chat_id, user)).choices
    if not n.isdigit() or not 1 <= int(n) <= len(choices):
        await query.answer(to_script(TEXTS["expired"], script_of(update)), show_alert=True)
        return
    await query.answer()
    await _converse(update, context, n, chat_id, query.message.message_id if query.message else None,
                    user)


async def new_conversation(update: Update, context: Context) -> None:
    message = update.effective_message
    user = update.effective_user.id if update.effective_user else message.chat_id
    _state(context).keep((message.chat_id, user), Conversation())
    await send_html(context.bot, message.chat_id, say("new", script_of(update)),
                    reply_to=message.message_id)


async def more(update: Update, context: Context) -> None:
    await answer_question(update, context, "还有吗")


def buttons(answer: Answer, articles: dict[str, Article]) -> InlineKeyboardMarkup | None:
    """One button per citation (per nearest source when not answered)."""
    rows = []
    if answer.answered:
        for c in answer.citations:
            label = f"[{c.n}] ¶{c.paragraph} {_short(to_script(c.title, answer.script))}"
            rows.append([InlineKeyboardButton(label, callback_data=encode_ref(
                c.article, c.paragraph, c.start, c.start + len(c.quote)))])
    else:
        for h in answer.hits[:3]:
            title = to_script(articles[h.chunk.article].title, answer.script)
            label = f"{h.rank}. ¶{h.chunk.first_paragraph} {_short(title)}"
            rows.append([InlineKeyboardButton(label, callback_data=encode_ref(
                h.chunk.article, h.chunk.first_paragraph))])
    return InlineKeyboardMarkup(rows) if rows else None


def _short(text: str, n: int = 18) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


async def show_passage(update: Update, context: Context) -> None:
    """A citation button: the full cited paragraph in its original text."""
    query = update.callback_query
    ref = decode_ref(query.data or "")
    article = _state(context).article(ref[0]) if ref else None
    if ref is None or article is None or not any(p.number == ref[1] for p in article.paragraphs):
        await query.answer(to_script(TEXTS["gone"], script_of(update)), show_alert=True)
        return
    await query.answer()
    chat_id = query.message.chat.id if query.message else query.from_user.id
    reply_to = query.message.message_id if query.message else None
    await send_html(context.bot, chat_id, render.passage_html(article, ref[1], ref[2]),
                    reply_to=reply_to)


async def on_error(update: object, context: Context) -> None:
    """Log with traceback, tell the user, keep serving everyone else."""
    log.error("update %s failed", getattr(update, "update_id", None), exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat:
        with contextlib.suppress(TelegramError):
            await context.bot.send_message(update.effective_chat.id,
                                           to_script(TEXTS["error"], script_of(update)))
    _state(context).done(update)  # told something went wrong: not to be replayed forever


async def mark_done(update: Update, context: Context) -> None:
    """Last handler group: every handler of ``update`` has finished."""
    _state(context).done(update)


_PLACE_AT_START = re.compile(r"^在?([\u4e00-\u9fff]{1,12}(?:村|社区|街道|镇))(?=[\u4e00-\u9fff，,])")


def example_questions(searcher: Searcher, k: int = 3) -> list[str]:
    """Up to ``k`` example questions (Simplified) that the bot really answers.

    Candidates name a village, community or town that opens a sentence
    ("茶棚村是怎么做的？"), one article at a time; each is kept only if the
    answer composer answers it. Headlines fill in when too few survive.
    """
    index = searcher.index
    per_article: list[list[str]] = []
    for a in itertools.islice(index.articles.values(), 10):  # parsed on access
        names: list[str] = []
        for p in a.paragraphs[:30]:
            text = to_simplified(a.paragraph_text(p))
            for start, end in split_sentences(text):
                m = _PLACE_AT_START.match(text[start:end])
                if m and not set(m.group(1)) & set("是的了和与在为把好要将对从各个") and m.group(1) not in names:
                    names.append(m.group(1))
        per_article.append([f"{n}是怎么做的？" for n in names])
    out: list[str] = []
    for round_ in itertools.zip_longest(*per_article):
        for q in filter(None, round_):
            if len(out) < k and compose_answer(searcher, q).answered:
                out.append(q)
    out += [f"「{a.title}」讲了什么？" for a in itertools.islice(index.articles.values(), k - len(out))]
    return [to_simplified(q) for q in out]


# --- application ------------------------------------------------------------------

def build_application(searcher: Searcher, config: BotConfig) -> Application:
    """The python-telegram-bot application with every handler registered."""
    builder = (Application.builder().token(config.token).concurrent_updates(True)
               .post_init(post_init))
    if config.base_url:
        builder = builder.base_url(config.base_url)
    journal = Journal(config.journal) if config.journal else None
    if journal is not None:
        builder = builder.get_updates_request(journaling_request(journal))
    app = builder.build()
    app.bot_data["newsqa"] = BotState(searcher, config, journal=journal)
    app.add_handler(TypeHandler(Update, gate), group=-1)
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CommandHandler("help", help_command))
    app.add_handler(CommandHandler("sources", sources))
    app.add_handler(CommandHandler("ask", ask))
    app.add_handler(CommandHandler("new", new_conversation))
    app.add_handler(CommandHandler("more", more))
    app.add_handler(CallbackQueryHandler(pick_choice, pattern=r"^c:"))
    app.add_handler(CallbackQueryHandler(show_passage))
    message = filters.UpdateType.MESSAGE
    app.add_handler(MessageHandler(message & filters.COMMAND, unknown_command))
    app.add_handler(MessageHandler(message & filters.TEXT & ~filters.COMMAND, on_text))
    media = (filters.Sticker.ALL | filters.PHOTO | filters.VOICE | filters.AUDIO | filters.VIDEO
             | filters.VIDEO_NOTE | filters.ANIMATION | filters.Document.ALL | filters.LOCATION
             | filters.CONTACT)
    app.add_handler(MessageHandler(message & filters.ChatType.PRIVATE & media, unsupported))
    app.add_handler(TypeHandler(Update, mark_done), group=99)
    app.add_error_handler(on_error)
    return app


async def post_init(app: Application) -> None:
    """Register the command menu (Chinese descriptions) once the bot is known, and queue
    the journaled updates a previous run received but did not finish."""
    try:
        await app.bot.set_my_commands([BotCommand(c, d) for c, d in COMMANDS])
    except TelegramError as exc:  # the menu is a convenience; answering matters more
        log.warning("could not register the command menu: %s", exc)
    journal = app.bot_data["newsqa"].journal
    if journal is not None:
        journal.prune(keep_seconds=86400)  # Telegram redelivers for a day at most
        pending = journal.pending()
        if pending:
            log.info("answering %d question(s) received before the last stop", len(pending))
        for payload in pending:
            await app.update_queue.put(Update.de_json(payload, app.bot))


async def wait_for_api(config: BotConfig, max_delay: float = 60.0) -> None:
    """Return once the Bot API answers ``getMe``, retrying with backoff (one log line per
    attempt): a bot started before the network is up is the normal case on a server.

    Raises:
        ConfigError: Telegram rejected the token.
    """
    from telegram import Bot

    delay, attempt = 1.0, 1
    while True:
        try:
            async with Bot(config.token, base_url=config.base_url or "https://api.telegram.org/bot"
                           ) as bot:
                await bot.get_me()
            return
        except InvalidToken as exc:
            raise ConfigError("Telegram rejected the bot token (Unauthorized); check "
                              "TELEGRAM_BOT_TOKEN or --token-file, or ask @BotFather for a new "
                              "one") from exc
        except (NetworkError, TelegramError) as exc:
            log.warning("the Bot API is not reachable yet (attempt %d: %s); retrying in %.0f s",
                        attempt, type(exc).__name__, delay)
        await asyncio.sleep(delay)
        delay, attempt = min(max_delay, delay * 2), attempt + 1


def run(searcher: Searcher, config: BotConfig) -> int:
    """Poll until interrupted (Ctrl-C or SIGTERM)."""
    asyncio.run(wait_for_api(config))
    app = build_application(searcher, config)
    log.info("newsqa bot: %d articles, retrievers %s; polling%s", len(searcher.index.articles),
             "+".join(searcher.retrievers), f" {config.base_url}" if config.base_url else "")
    try:
        app.run_polling(allowed_updates=["message", "callback_query"], timeout=config.poll_timeout,
                        drop_pending_updates=False)
    except InvalidToken as exc:
        raise ConfigError("Telegram rejected the bot token (Unauthorized); check "
                          "TELEGRAM_BOT_TOKEN or --token-file, or ask @BotFather for a new one") from exc
    except NetworkError as exc:
        raise NewsqaError(f"cannot reach the Telegram Bot API: {exc}") from exc
    return 0

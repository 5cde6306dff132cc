"""The Telegram bot: the real python-telegram-bot client over HTTP to a fake Bot API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot import render
from bot.delivery import RateLimiter, TokenFilter, decode_ref, encode_ref
from bot.telegram import BotConfig, build_application, post_init
from retrieval import Index, Searcher, Settings, build_index

from .conftest import ROOT, SIMP, TRAD
from .fake_telegram import BOT_ID, BOT_USERNAME, FakeTelegram, parse_html, utf16_len

LEXICAL = Settings(model="")


@contextlib.contextmanager
def running_bot(fake: FakeTelegram, searcher: Searcher, **config: object) -> Iterator[None]:
    """The application polling ``fake`` from a thread with its own event loop."""
    settings = {"rate_limit": 0, "poll_timeout": 1, **config}
    app = build_application(searcher, BotConfig(token=fake.token, base_url=fake.url, **settings))
    loop = asyncio.new_event_loop()
    ready, errors = threading.Event(), []
    stop: asyncio.Event | None = None

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        try:
            async with app:
                await post_init(app)
                await app.start()
                await app.updater.start_polling(timeout=1, poll_interval=0,
                                                allowed_updates=["message", "callback_query"])
                ready.set()
                await stop.wait()
                await app.updater.stop()
                await app.stop()
        except Exception as exc:  # surfaced in the test thread
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(30) and not errors, errors
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
        assert not errors, errors


@pytest.fixture
def searcher(lexical_index: Index) -> Searcher:
    return Searcher(lexical_index, LEXICAL)


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


def replies_to(fake: FakeTelegram, message_id: int) -> list[dict]:
    return [c.params for c in fake.sent()
            if (c.params.get("reply_parameters") or {}).get("message_id") == message_id]


def wait_reply(fake: FakeTelegram, message_id: int, n: int = 1) -> list[dict]:
    fake.wait_for(lambda f: len(replies_to(f, message_id)) >= n)
    return replies_to(fake, message_id)


def callback(fake: FakeTelegram, data: str, user: int = 1, message_id: int = 1) -> None:
    fake.push(callback_query={
        "id": f"cq{time.monotonic_ns()}", "chat_instance": "ci", "data": data,
        "from": {"id": user, "is_bot": False, "first_name": "U"},
        "message": {"message_id": message_id, "date": int(time.time()), "text": "answer",
                    "chat": {"id": user, "type": "private"},
                    "from": {"id": BOT_ID, "is_bot": True, "first_name": "newsqa"}}})


# --- conversations --------------------------------------------------------------

def test_private_question_gets_cited_answer_with_buttons(fake, searcher) -> None:
    with running_bot(fake, searcher):
        mid = fake.message("单光屯社区化解了多少矛盾？", user=11)
        [reply] = wait_reply(fake, mid)
    assert reply["parse_mode"] == "HTML" and int(reply["chat_id"]) == 11
    text = reply["text"]
    assert "<b>52件</b>" in text and "[1]" in text
    assert "以高质量党建引领高质量发展 — 聊城日报, 2024-05-21, ¶ 5" in parse_html(text)
    buttons = [b for row in reply["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons and all(len(b["callback_data"].encode()) <= 64 for b in buttons)
    assert buttons[0]["text"].startswith("[1] ¶5")
    actions = [c for c in fake.sent("sendChatAction") if int(c.params["chat_id"]) == 11]
    assert actions and actions[0].params["action"] == "typing"
    assert actions[0].at < fake.sent()[-1].at


def test_traditional_question_gets_traditional_answer(fake, searcher) -> None:
    with running_bot(fake, searcher):
        mid = fake.message("單光屯社區化解了多少矛盾？", user=12)
        [reply] = wait_reply(fake, mid)
    visible = parse_html(reply["text"])
    assert "單光屯社區" in visible and "52件" in visible and "來源" in visible
    assert "单光屯社区" not in visible


def test_groups_answer_only_when_addressed(fake, searcher) -> None:
    group = {"chat": -100123, "chat_type": "supergroup"}
    mention = f"@{BOT_USERNAME}"
    with running_bot(fake, searcher):
        ignored = fake.message("单光屯社区化解了多少矛盾？", user=13, **group)
        other_bot = fake.message("/ask@some_other_bot 单光屯社区化解了多少矛盾？", user=13, **group)
        mentioned = fake.message(f"{mention} 单光屯社区化解了多少矛盾？", user=13, **group,
                                 entities=[{"type": "mention", "offset": 0,
                                            "length": len(mention)}])
        asked = fake.message("/ask 鄭永強是誰？", user=14, **group)
        bot_msg = {"message_id": 1, "date": 0, "chat": {"id": -100123, "type": "supergroup"},
                   "from": {"id": BOT_ID, "is_bot": True, "first_name": "newsqa"}, "text": "…"}
        replied = fake.message("哪个村种芹菜？", user=15, **group, reply_to_message=bot_msg)
        for mid in (mentioned, asked, replied):
            wait_reply(fake, mid)
        time.sleep(0.5)  # give the ignored ones every chance to be answered wrongly
    assert not replies_to(fake, ignored) and not replies_to(fake, other_bot)
    assert "52件" in replies_to(fake, mentioned)[0]["text"]
    assert "鄭永強" in replies_to(fake, asked)[0]["text"]
    assert "芹菜" in parse_html(replies_to(fake, replied)[0]["text"])
    assert all(int(c.params["chat_id"]) == -100123 for c in fake.sent())


def test_follow_ups_are_kept_per_user_in_groups(fake, searcher) -> None:
    group = {"chat": -100777, "chat_type": "supergroup"}

    def ask(text: str, user: int) -> int:
        return fake.message(f"/ask {text}", user=user, **group)

    with running_bot(fake, searcher):
        a1 = ask("高岭村的党支部书记是谁？", 21)
        wait_reply(fake, a1)
        b1 = ask("她任职多少年了？", 22)  # another user: nothing to follow
        a2 = ask("她任职多少年了？", 21)
        [b_reply], [a_reply] = wait_reply(fake, b1), wait_reply(fake, a2)
        new = fake.message("/new", user=21, **group)
        wait_reply(fake, new)
        a3 = ask("她任职多少年了？", 21)
        [a3_reply] = wait_reply(fake, a3)
    assert "按“高岭村的党支部书记赵玉红任职多少年了？”理解" in parse_html(a_reply["text"])
    assert "<b>10年</b>" in a_reply["text"]
    assert "理解" not in parse_html(b_reply["text"]) and "理解" not in parse_html(a3_reply["text"])


def test_ambiguous_question_offers_buttons_that_ask_the_full_question(fake, searcher) -> None:
    with running_bot(fake, searcher):
        mid = fake.message("村党支部书记是谁？", user=31)
        [reply] = wait_reply(fake, mid)
        buttons = [b for row in reply["reply_markup"]["inline_keyboard"] for b in row]
        labels = [b["text"] for b in buttons]
        assert "大杨庄村党支部书记是谁？" in labels
        pick = buttons[labels.index("大杨庄村党支部书记是谁？")]["callback_data"]
        assert pick.startswith("c:") and len(pick.encode()) <= 64
        callback(fake, pick, user=31, message_id=mid)
        fake.wait_for(lambda f: any("杨本凯" in c.params.get("text", "") for c in f.sent()))
        callback(fake, "c:9", user=31, message_id=mid)  # no such choice: said, not guessed
        fake.wait_for(lambda f: any(c.params.get("show_alert") for c in f.sent("answerCallbackQuery")))
    answer = next(c.params["text"] for c in fake.sent() if "杨本凯" in c.params.get("text", ""))
    assert "<b>杨本凯</b>" in answer and "按“大杨庄村党支部书记是谁？”理解" in parse_html(answer)


def test_citation_button_shows_the_passage_even_after_restart(fake, searcher) -> None:
    with running_bot(fake, searcher):
        mid = fake.message("单光屯社区化解了多少矛盾？", user=16)
        [reply] = wait_reply(fake, mid)
    data = reply["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    answer_id = 99
    with running_bot(fake, searcher):  # a new process would see the same: nothing kept in memory
        callback(fake, data, user=16, message_id=answer_id)
        [passage] = wait_reply(fake, answer_id)
    article = searcher.index.articles[SIMP]
    paragraph = next(p for p in article.paragraphs if p.number == 5)
    visible = parse_html(passage["text"])
    assert article.paragraph_text(paragraph) in visible
    assert "<b>" in passage["text"].split("\n\n", 1)[1]  # the quoted sentence stands out
    assert fake.sent("answerCallbackQuery")


def test_stale_button_gets_an_alert(fake, searcher) -> None:
    with running_bot(fake, searcher):
        callback(fake, encode_ref("no_such_article", 3, 1, 5), user=17)
        fake.wait_for(lambda f: f.sent("answerCallbackQuery"))
    alert = fake.sent("answerCallbackQuery")[0].params
    assert alert.get("show_alert") in (True, "true", "True") and "不在索引" in alert["text"]


def test_long_passage_is_split_into_valid_messages(fake, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    sentence = "青岛市<b>芹菜</b>&合作社今年种植面积扩大到三千亩，带动农户增收。"
    long_para = sentence * 160  # about 5,600 characters in one paragraph
    (corpus / "long.txt").write_text(
        f"---\ntitle: 芹菜长文\nsource: 测试报\ndate: 2024-01-02\n---\n\n开头一段。\n\n{long_para}\n",
        "utf-8")
    index, _ = build_index(corpus, tmp_path / "idx", LEXICAL)
    article = index.articles["long"]
    number = next(p.number for p in article.paragraphs if len(article.paragraph_text(p)) > 4096)
    with running_bot(fake, Searcher(index, LEXICAL)):
        callback(fake, encode_ref("long", number, 0, 0), user=18, message_id=5)
        fake.wait_for(lambda f: len(f.sent()) >= 2)
        time.sleep(0.3)
    pieces = [c.params["text"] for c in fake.sent()]
    assert len(pieces) == 2
    visible = [parse_html(p) for p in pieces]  # raises if a piece is not valid HTML
    assert all(utf16_len(v) <= 4096 for v in visible)
    assert visible[0].endswith("。")  # cut at a sentence end
    assert long_para in "".join(visible)


def test_html_in_questions_and_articles_is_escaped(fake, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(
        "---\ntitle: <i>A&B</i> 公司\nsource: 测试报\ndate: 2024-01-02\n---\n\n"
        "<b>A&B</b>公司总经理张三介绍，公司今年招聘了120名员工。\n", "utf-8")
    index, _ = build_index(corpus, tmp_path / "idx", LEXICAL)
    with running_bot(fake, Searcher(index, LEXICAL)):
        m1 = fake.message("<b>&</b> A&B公司招聘了多少员工？", user=19)
        m2 = fake.message("<script>&amp; 火星上有几个村？", user=19)
        [r1], [r2] = wait_reply(fake, m1), wait_reply(fake, m2)
    assert all(c.status == 200 for c in fake.calls if c.method == "sendMessage")
    assert "<b>A&B</b>公司" in parse_html(r1["text"]) and "120名" in parse_html(r1["text"])
    assert "&lt;i&gt;A&amp;B&lt;/i&gt;" in r1["text"]
    assert parse_html(r2["text"])


def test_media_unknown_commands_and_limits(fake, searcher) -> None:
    with running_bot(fake, searcher):
        sticker = fake.message(None, user=20, sticker={
            "file_id": "s", "file_unique_id": "s", "type": "regular", "width": 1, "height": 1,
            "is_animated": False, "is_video": False})
        unknown = fake.message("/frobnicate", user=20)
        giant = fake.message("单光屯" * 400, user=20)
        emoji = fake.message("🙂🙂", user=20)
        start = fake.message("/start", user=20)
        usage = fake.message("/ask", user=20)
        for mid in (sticker, unknown, giant, emoji, usage):
            wait_reply(fake, mid)
        fake.wait_for(lambda f: any("可以这样问" in c.params["text"] for c in f.sent()))
    assert "文字" in replies_to(fake, sticker)[0]["text"]
    assert "/help" in replies_to(fake, unknown)[0]["text"]
    assert "1200 字" in replies_to(fake, giant)[0]["text"]
    assert "没有文字" in replies_to(fake, emoji)[0]["text"]
    assert "/ask" in replies_to(fake, usage)[0]["text"]
    assert start
    commands = fake.sent("setMyCommands")[0].params["commands"]
    assert {c["command"] for c in commands} == {"start", "help", "ask", "sources", "more", "new"}
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in c["description"]) for c in commands)


def test_allowlist_refuses_politely_without_logging_text(fake, searcher, caplog) -> None:
    caplog.set_level(logging.INFO)
    with running_bot(fake, searcher, allowed_ids=frozenset({21})):
        ok = fake.message("单光屯社区化解了多少矛盾？", user=21)
        refused = fake.message("秘密问题：芹菜", user=22)
        [r_ok], [r_refused] = wait_reply(fake, ok), wait_reply(fake, refused)
    assert "52件" in r_ok["text"] and "授权" in r_refused["text"]
    assert "refused update" in caplog.text and "秘密问题" not in caplog.text


def test_rate_limit_per_user(fake, searcher) -> None:
    with running_bot(fake, searcher, rate_limit=2, rate_window=60):
        mids = [fake.message(f"单光屯社区化解了多少矛盾？{i}", user=23) for i in range(3)]
        other = fake.message("单光屯社区化解了多少矛盾？", user=24)
        for mid in [*mids, other]:
            wait_reply(fake, mid)
    texts = [replies_to(fake, m)[0]["text"] for m in mids]
    assert sum("52件" in t for t in texts) == 2 and sum("太快" in t for t in texts) == 1
    assert "52件" in replies_to(fake, other)[0]["text"]


def test_flood_limit_and_server_errors_are_retried(fake, searcher) -> None:
    fake.fail_next("sendMessage", 429, retry_after=1)
    fake.fail_next("sendMessage", 502)
    with running_bot(fake, searcher):
        mid = fake.message("单光屯社区化解了多少矛盾？", user=25)
        [reply] = wait_reply(fake, mid)
    statuses = [c.status for c in fake.calls if c.method == "sendMessage"]
    assert statuses == [429, 502, 200] and "52件" in reply["text"]
    first, last = (c for c in fake.calls if c.method == "sendMessage" and c.status != 502)
    assert last.at - first.at >= 0.9  # waited out retry_after


def test_rejected_formatting_falls_back_to_plain_text(fake, searcher) -> None:
    fake.fail_next("sendMessage", 400, description="Bad Request: can't parse entities: forced")
    with running_bot(fake, searcher):
        mid = fake.message("单光屯社区化解了多少矛盾？", user=26)
        [reply] = wait_reply(fake, mid)
    assert "parse_mode" not in reply and "52件" in reply["text"] and "<b>" not in reply["text"]


class ExplodingSearcher(Searcher):
    def search_with_vector(self, question: str, k: int | None = None):
        if "爆炸" in question:
            raise RuntimeError("injected failure")
        return super().search_with_vector(question, k)


def test_handler_exception_does_not_stop_the_bot(fake, lexical_index, caplog) -> None:
    with running_bot(fake, ExplodingSearcher(lexical_index, LEXICAL)):
        boom = fake.message("爆炸是怎么回事？", user=27)
        fake.wait_for(lambda f: any(int(c.params["chat_id"]) == 27 and "出错" in c.params["text"]
                                    for c in f.sent()))
        after = fake.message("单光屯社区化解了多少矛盾？", user=27)
        [reply] = wait_reply(fake, after)
    assert "52件" in reply["text"] and boom
    assert "injected failure" in caplog.text  # logged with its traceback


def test_fifty_questions_from_twenty_users_at_once(fake, searcher) -> None:
    questions = ["单光屯社区化解了多少矛盾？", "鄭永強是誰？", "哪个村种芹菜？", "茶棚村常住人口有多少？",
                 "火星上有几个村？"]
    with running_bot(fake, searcher, rate_limit=5):
        sent = []
        for i in range(50):
            user = 1000 + i % 20
            sent.append((user, fake.message(questions[i % len(questions)], user=user)))
        fake.wait_for(lambda f: len(f.sent()) >= 50, timeout=60)
        time.sleep(0.5)  # anything extra would show up now
    replies = fake.sent()
    assert len(replies) == 50
    by_question = {}
    for c in replies:
        by_question.setdefault(c.params["reply_parameters"]["message_id"], []).append(c)
    assert sorted(by_question) == sorted(mid for _, mid in sent)
    for user, mid in sent:
        [c] = by_question[mid]
        assert int(c.params["chat_id"]) == user
    for user in range(1000, 1020):  # one at a time per user: answers come back in order
        order = [c.params["reply_parameters"]["message_id"] for c in replies
                 if int(c.params["chat_id"]) == user]
        assert order == sorted(order)


# --- the command as users run it --------------------------------------------------

def _newsqa(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bot.cli", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "NEWSQA_MODEL": "", "PYTHONPATH": str(ROOT),
                                 **env})


def test_newsqa_telegram_runs_and_never_logs_the_token(fake, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(fake.token + "\n")
    proc = _newsqa(["telegram", "--corpus", str(ROOT / "seeds"), "--index", str(tmp_path / "i"),
                    "--token-file", str(token_file), "--base-url", fake.url,
                    "--log-level", "DEBUG"], {}, tmp_path)
    try:
        fake.wait_for(lambda f: f.sent("setMyCommands"), timeout=60)
        mid = fake.message("鄭永強是誰？", user=31)
        [reply] = wait_reply(fake, mid)
        callback(fake, reply["reply_markup"]["inline_keyboard"][0][0]["callback_data"], user=31,
                 message_id=77)
        wait_reply(fake, 77)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "鄭永強" in reply["text"]
    assert "getUpdates" in err and "<token>" in err  # DEBUG logs URLs: redacted
    assert fake.token not in out + err
    assert fake.token.split(":")[1] not in out + err


def test_rejected_or_missing_token_is_a_clear_error(fake, tmp_path: Path) -> None:
    bad = "999999:WRONG-token_abcdefghijklmnopqrstuvwxyz"
    proc = _newsqa(["telegram", "--base-url", fake.url, "--corpus", str(ROOT / "seeds"),
                    "--index", str(tmp_path / "i")], {"TELEGRAM_BOT_TOKEN": bad}, tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "rejected the bot token" in err
    assert bad not in out + err and "WRONG-token" not in out + err
    proc = _newsqa(["telegram"], {"TELEGRAM_BOT_TOKEN": ""}, tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "TELEGRAM_BOT_TOKEN" in err and "BotFather" in err


def test_journal_replays_unfinished_updates_once_and_drops_redeliveries(fake, searcher,
                                                                         tmp_path: Path) -> None:
    from bot.journal import Journal

    journal_file = tmp_path / "journal.sqlite"
    pending = {"update_id": 500, "message": {
        "message_id": 4242, "date": int(time.time()), "text": "鄭永強是誰？",
        "chat": {"id": 41, "type": "private", "first_name": "U"},
        "from": {"id": 41, "is_bot": False, "first_name": "U"}}}
    journal = Journal(journal_file)
    journal.record([pending])  # received by a run that was killed before answering
    journal.close()
    with running_bot(fake, searcher, journal=str(journal_file)):
        [replayed] = wait_reply(fake, 4242)
        fake.push(**{k: v for k, v in pending.items() if k != "update_id"})  # a new update...
        mid = fake.message("单光屯社区化解了多少矛盾？", user=42)
        wait_reply(fake, mid)
        time.sleep(0.5)
    assert "鄭永強" in replayed["text"]
    assert len(replies_to(fake, 4242)) == 2  # ...with the same message is a new question
    journal = Journal(journal_file)
    assert journal.pending() == [] and journal.is_done(500)
    # A second delivery of an update already journaled is dropped.
    assert journal.record([pending]) == []


@pytest.mark.parametrize("kills", [3])
def test_kill_9_during_a_load_loses_no_question(fake, tmp_path: Path, kills: int) -> None:
    """SIGKILL at random moments while 40 questions from 8 users are answered; after the last
    restart every question has been answered. An answer whose sendMessage was in flight when
    the process died (Telegram has it, the journal does not know) is sent again: at most one
    such per user and kill."""
    import random

    rng = random.Random(7)
    token_file = tmp_path / "token"
    token_file.write_text(fake.token + "\n")
    args = ["telegram", "--corpus", str(ROOT / "seeds"), "--index", str(tmp_path / "i"),
            "--token-file", str(token_file), "--base-url", fake.url, "--rate-limit", "0",
            "--journal", str(tmp_path / "journal.sqlite")]
    questions = ["单光屯社区化解了多少矛盾？", "鄭永強是誰？", "哪个村种芹菜？", "茶棚村常住人口有多少？",
                 "火星上有几个村？"]
    mids = []
    for run in range(kills + 1):
        starts = len(fake.sent("setMyCommands"))
        proc = _newsqa(args, {}, tmp_path)
        try:
            fake.wait_for(lambda f, n=starts: len(f.sent("setMyCommands")) > n, timeout=90)
            if run == 0:
                mids = [fake.message(questions[i % 5], user=2000 + i % 8) for i in range(40)]
            if run < kills:
                time.sleep(rng.uniform(0.05, 0.6))
                proc.kill()  # SIGKILL: no cleanup at all
                proc.communicate(timeout=30)
                continue
            fake.wait_for(lambda f, ids=tuple(mids): all(replies_to(f, m) for m in ids), timeout=90)
            time.sleep(1.0)  # a duplicate would show up now
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.communicate(timeout=60)
    counts = [len(replies_to(fake, m)) for m in mids]
    print(f"kill -9 x{kills}: {len(mids)} questions, {sum(counts) - len(counts)} answered twice")
    assert min(counts) == 1, counts  # none lost
    assert sum(counts) - len(counts) <= kills * 8, counts


def test_bot_started_before_the_network_waits_and_retries(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "stderr.log"
    with open(log, "w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "telegram", "--corpus", str(ROOT / "seeds"),
             "--index", str(tmp_path / "i"), "--base-url", f"http://127.0.0.1:{port}/bot",
             "--journal", ""], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err_file,
            env={**os.environ, "NEWSQA_MODEL": "", "PYTHONPATH": str(ROOT),
                 "TELEGRAM_BOT_TOKEN": "123456:TEST-token_abcdefghijklmnopqrstuvwxyz"},
            # as when started by a script in the background: SIGINT inherited ignored
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and proc.poll() is None and \
                    log.read_text().count("not reachable yet") < 2:
                time.sleep(0.2)
            alive = proc.poll() is None
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    err = log.read_text()
    assert alive, err[-2000:]
    assert proc.returncode == 130  # stopped by SIGINT, not killed after the timeout
    assert err.count("not reachable yet") >= 2 and "Traceback" not in err
    assert "TEST-token" not in err


def test_debug_logging_never_shows_a_message(fake, lexical_index, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(fake.token + "\n")
    proc = _newsqa(["telegram", "--corpus", str(ROOT / "seeds"), "--index", str(tmp_path / "i"),
                    "--token-file", str(token_file), "--base-url", fake.url, "--log-level", "DEBUG",
                    "--allowed-ids", "1", "--journal", ""], {}, tmp_path)
    try:
        fake.wait_for(lambda f: f.sent("setMyCommands"), timeout=60)
        mid = fake.message("秘密的问题内容", user=77)
        wait_reply(fake, mid)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert "refused update" in err and "秘密" not in err


# --- pieces --------------------------------------------------------------------------

def test_token_filter_redacts_messages_args_and_tracebacks() -> None:
    token = "123456:ABCdefGHIjklMNOpqrSTUvwxYZ0123456789"
    flt = TokenFilter(token)
    try:
        raise RuntimeError(f"POST https://api.telegram.org/bot{token}/getMe failed")
    except RuntimeError:
        record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "HTTP Request: %s", (
            f"https://api.telegram.org/bot{token}/getUpdates",), sys.exc_info())
    assert flt.filter(record)
    line = logging.Formatter().format(record)
    assert token not in line and line.count("<token>") >= 2
    assert flt.redact("other 987654321:" + "x" * 35) == "other <token>"


def test_button_data_fits_and_survives_long_ids() -> None:
    short = encode_ref(TRAD, 12, 400, 450)
    assert decode_ref(short) == (TRAD, 12, (400, 450))
    long_id = "很长的文章名" * 10
    data = encode_ref(long_id, 3, 123456, 123500)
    assert len(data.encode()) <= 64 and data.startswith("p:#")
    assert decode_ref(data)[1:] == (3, (123456, 123500))
    assert decode_ref("garbage") is None and decode_ref("p:x:y:1:2") is None


def test_split_html_keeps_tags_balanced_across_cuts() -> None:
    text = "<i>来源</i>\n" + "<b>" + "很长的加粗句子。" * 700 + "</b>" + "尾巴&amp;"
    pieces = render.split_html(text, limit=1000)
    assert len(pieces) > 5
    visible = [parse_html(p) for p in pieces]
    assert all(utf16_len(v) <= 1000 for v in visible)
    assert all(p.startswith("<b>") for p in pieces[1:])
    assert "".join(visible).replace("\n", "") == parse_html(text).replace("\n", "")
    assert render.split_html("短<b>消息</b>") == ["短<b>消息</b>"]
    emoji = "😀" * 3000  # two UTF-16 units each
    assert all(utf16_len(parse_html(p)) <= 4096 for p in render.split_html(emoji))


def test_rate_limiter_window() -> None:
    now = [0.0]
    limiter = RateLimiter(2, 60, clock=lambda: now[0])
    assert limiter.check(1) == 0 and limiter.check(1) == 0
    assert limiter.check(1) == pytest.approx(60)
    assert limiter.check(2) == 0
    now[0] = 61
    assert limiter.check(1) == 0
    assert RateLimiter(0, 60).check(1) == 0


def test_fake_server_behaves_like_telegram(fake) -> None:
    url = f"{fake.url}{fake.token}/sendMessage"
    ok = httpx.post(url, data={"chat_id": 1, "text": "<b>好</b>", "parse_mode": "HTML"})
    assert ok.json()["ok"]
    for bad in ("<b>未闭合", "<div>不支持</div>", "A & B", "<b><i>交叉</b></i>"):
        r = httpx.post(url, data={"chat_id": 1, "text": bad, "parse_mode": "HTML"})
        assert r.status_code == 400 and "can't parse entities" in r.json()["description"], bad
    r = httpx.post(url, data={"chat_id": 1, "text": "字" * 4097})
    assert r.status_code == 400
    markup = '{"inline_keyboard": [[{"text": "x", "callback_data": "' + "x" * 65 + '"}]]}'
    r = httpx.post(url, data={"chat_id": 1, "text": "x", "reply_markup": markup})
    assert r.status_code == 400
    assert httpx.post(f"{fake.url}bad:token/getMe").status_code == 401
    began = time.monotonic()
    r = httpx.post(f"{fake.url}{fake.token}/getUpdates", data={"timeout": 1}, timeout=5)
    assert r.json()["result"] == [] and time.monotonic() - began >= 0.9

"""The ``newsqa`` command: index, ask, chat, sources, eval, telegram.

This is an edge: environment variables are read here and nowhere in
:mod:`retrieval`. Errors become one-line messages and exit codes.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from retrieval import (
    DEFAULT_MODEL,
    ConfigError,
    CorpusError,
    Index,
    IndexError_,
    ModelUnavailableError,
    NewsqaError,
    QuestionError,
    Searcher,
    Settings,
    __version__,
    ask,
    build_index,
    index_status,
)
from retrieval.corpus import corpus_files

from . import render

EXIT_USAGE = 2


def default_index_dir(corpus: str, settings: Settings | None = None) -> str:
    """``.newsqa/<corpus name>-<hash>``: one index per corpus folder and per set of settings
    that change what an index holds (the model, chunking, tokenizer), beside the caller, so
    that alternating ``--model ''`` and the default does not rebuild every time."""
    path = Path(corpus).resolve()
    key = str(path) + json.dumps((settings or Settings()).index_params(), sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return str(Path(".newsqa") / f"{path.name or 'corpus'}-{digest}")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", default=os.environ.get("NEWSQA_CORPUS", "seeds"),
                   help="folder of .txt/.md articles (default: seeds; env NEWSQA_CORPUS)")
    p.add_argument("--index", default=os.environ.get("NEWSQA_INDEX"),
                   help="index folder (default: .newsqa/<corpus>-<hash>; env NEWSQA_INDEX)")
    p.add_argument("--model", default=os.environ.get("NEWSQA_MODEL", DEFAULT_MODEL),
                   help=f"sentence-transformers model id or path; '' for lexical only "
                        f"(default: {DEFAULT_MODEL}; env NEWSQA_MODEL)")
    p.add_argument("--require-dense", action="store_true",
                   help="fail instead of falling back to lexical retrieval")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="newsqa", description="Cited answers from Chinese news.")
    parser.add_argument("--version", action="version", version=f"newsqa {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="build or update the index")
    _common(p)
    p.add_argument("--rebuild", action="store_true", help="ignore the existing index")
    p.add_argument("--verify", action="store_true",
                   help="check every index file against its checksum and exit (4 if damaged)")

    p = sub.add_parser("ask", help="answer questions (arguments, or one per line on stdin)")
    _common(p)
    p.add_argument("question", nargs="*", help="the question; none: read stdin")
    p.add_argument("--json", action="store_true", help="one JSON object per question")
    p.add_argument("--follow-ups", action="store_true",
                   help="standard input holds the turns of one conversation, one per line; an "
                        "empty line starts a new conversation")
    p.add_argument("--top-k", type=int, default=5, help="passages retrieved (default 5)")

    p = sub.add_parser("chat", help="interactive session")
    _common(p)
    p.add_argument("--top-k", type=int, default=5, help="passages retrieved (default 5)")

    p = sub.add_parser("sources", help="list the articles")
    _common(p)
    p.add_argument("--json", action="store_true",
                   help="one JSON object per article: id, file, title, source, date, authors, "
                        "script, paragraphs, chunks, retrievers")

    p = sub.add_parser("eval", help="measure retrieval and answer quality")
    _common(p)
    p.add_argument("--questions", default=None,
                   help="gold questions (JSON Lines; default: the seeds gold set shipped with newsqa, "
                        "retrieval/gold/seeds.jsonl)")
    p.add_argument("--cmrc", metavar="DIR", default=None,
                   help="evaluate on CMRC 2018 (dev + trial) from DIR instead")
    p.add_argument("--squad", metavar="FILE", nargs="+", default=None,
                   help="evaluate on SQuAD-format files instead (e.g. DRCD_test.json)")
    p.add_argument("--dialogues", metavar="FILE", default=None,
                   help="play the dialogues of FILE (JSON Lines) and score each turn by kind")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N questions only")
    p.add_argument("--top-k", type=int, default=5, help="passages retrieved (default 5)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--failures", type=int, default=0, metavar="N",
                   help="also list N questions that missed")
    p = sub.add_parser("telegram", help="run the Telegram bot (long polling)")
    _common(p)
    p.add_argument("--token-file", metavar="FILE",
                   help="file holding the bot token (default: env TELEGRAM_BOT_TOKEN)")
    p.add_argument("--base-url", default=os.environ.get("TELEGRAM_BASE_URL"),
                   help="self-hosted Bot API server, e.g. http://localhost:8081/bot "
                        "(env TELEGRAM_BASE_URL; default: Telegram's)")
    p.add_argument("--allowed-ids", default=os.environ.get("NEWSQA_ALLOWED_IDS", ""),
                   help="comma-separated user and chat ids allowed to use the bot "
                        "(env NEWSQA_ALLOWED_IDS; default: everyone)")
    p.add_argument("--rate-limit", default=os.environ.get("NEWSQA_RATE_LIMIT", "5/60"),
                   metavar="N/SECONDS", help="questions per user per window; 0 for no limit "
                                             "(env NEWSQA_RATE_LIMIT; default 5/60)")
    p.add_argument("--top-k", type=int, default=5, help="passages retrieved (default 5)")
    p.add_argument("--forget-after", default=os.environ.get("NEWSQA_FORGET_AFTER", "30"),
                   metavar="MINUTES", help="forget a conversation after this much silence "
                                           "(env NEWSQA_FORGET_AFTER; default 30)")
    p.add_argument("--journal", default=os.environ.get("NEWSQA_JOURNAL",
                                                       ".newsqa/telegram-journal.sqlite"),
                   metavar="FILE", help="SQLite journal of received updates, so none is lost to "
                                        "a crash ('' for none; env NEWSQA_JOURNAL)")
    p.add_argument("--log-level", default=os.environ.get("NEWSQA_LOG_LEVEL", "INFO").upper(),
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="log detail on stderr (env NEWSQA_LOG_LEVEL; default INFO)")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from command-line arguments (validated; messages name the flags)."""
    try:
        return _settings_from(args)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("top_k", "--top-k")) from None


def _settings_from(args: argparse.Namespace) -> Settings:
    changes: dict[str, Any] = {"model": args.model, "require_dense": args.require_dense,
                               "cache_dir": cache_dir()}
    if getattr(args, "top_k", None) is not None:
        changes["top_k"] = args.top_k
    return Settings().replace(**changes)


def cache_dir() -> str:
    """Where the bundled model is prepared: ``$NEWSQA_CACHE``, else ``$XDG_CACHE_HOME/newsqa``,
    else ``~/.cache/newsqa``."""
    if os.environ.get("NEWSQA_CACHE"):
        return os.environ["NEWSQA_CACHE"]
    xdg = os.environ.get("XDG_CACHE_HOME")
    return str(Path(xdg) / "newsqa") if xdg else ""


def _warn(msg: str) -> None:
    print(f"newsqa: warning: {msg}", file=sys.stderr)


def open_index(args: argparse.Namespace, settings: Settings, *, rebuild: bool = False,
               say: Callable[[str], None] | None = None) -> Index:
    """Load the index, building, updating or repairing it first when the corpus is there.

    Without a corpus folder (or with an empty one) an existing index still answers, with a
    warning. With ``--require-dense`` an index without vectors is an error (exit 5).
    """
    say = say or (lambda m: print(m, file=sys.stderr))
    folder = args.index or default_index_dir(args.corpus, settings)
    _check_index_path(folder)
    try:
        status, reason = ("stale", "rebuild requested") if rebuild else index_status(
            args.corpus, folder, settings)
        if status != "fresh" and not corpus_files(args.corpus):
            raise CorpusError(f"corpus folder {args.corpus} holds no .txt or .md article")
    except CorpusError as exc:
        try:
            index = Index.load(folder)
        except IndexError_:
            raise exc from None
        _warn(f"{exc}; answering from the index built earlier in {folder}")
        return _dense_required(index, settings)
    if status == "fresh":
        try:
            return _dense_required(Index.load(folder), settings)
        except IndexError_ as exc:  # safe to rebuild: the corpus is right here
            status, reason = "stale", str(exc)
    reason = re.sub(r"[;,]? *rebuild (?:it )?with `newsqa index --rebuild`", "", reason)
    say(f"newsqa: {'building' if status == 'missing' else 'updating'} the index of "
        f"{args.corpus} in {folder}" + (f" ({reason})" if status == "stale" else "") + " …")
    index, report = build_index(args.corpus, folder, settings, rebuild=rebuild, warn=_warn,
                                progress=sys.stderr.isatty(), notice=lambda m: say(f"newsqa: {m}"))
    say(_summary(report))
    return _dense_required(index, settings)


def _dense_required(index: Index, settings: Settings) -> Index:
    if settings.require_dense and "dense" not in index.retrievers:
        raise ModelUnavailableError(f"the index in {index.folder} has no dense retriever and "
                                    f"--require-dense is set; run `newsqa index --rebuild` where "
                                    f"the model loads")
    return index


def _check_index_path(folder: str) -> None:
    """An index folder must be a folder (or not exist yet) outside /proc and /sys."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--index {folder} is a file, not an index folder")
    if path.resolve().parts[1:2] in (("proc",), ("sys",), ("dev",)):
        raise ConfigError(f"--index {folder} is inside a system folder; choose another")


def _summary(r: Any) -> str:
    dim = f", dimension {r.dimension}" if r.dimension else ""
    extra = f", {r.embedded} passages embedded" if r.embedded else ""
    return (f"newsqa: index {r.action}: {r.articles} articles, {r.chunks} chunks, retrievers "
            f"{'+'.join(r.retrievers)}{dim}{extra}, {r.seconds:.1f} s")


def cmd_index(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    folder = args.index or default_index_dir(args.corpus, settings)
    _check_index_path(folder)
    if args.verify:
        index = Index.load(folder, verify="all")
        print(f"index verified: {len(index.manifest.get('checksums', {}))} files match their "
              f"checksums; {len(index.articles)} articles, {len(index.chunks)} chunks\n  folder: {folder}")
        return 0
    _, report = build_index(args.corpus, folder, settings, rebuild=args.rebuild, warn=_warn,
                            progress=sys.stderr.isatty(),
                            notice=lambda m: print(f"newsqa: {m}", file=sys.stderr))
    print(_summary(report).removeprefix("newsqa: "))
    for name, ids in (("added", report.added), ("changed", report.changed),
                      ("removed", report.removed)):
        if ids and report.action == "updated":
            print(f"  {name}: {', '.join(ids)}")
    print(f"  folder: {folder}")
    return 0


def answer_one(searcher: Searcher, question: str) -> Any:
    """Search and compose; raises QuestionError for unusable questions."""
    return ask(searcher, question)


ECHO_LIMIT = 200  # characters of a bad question repeated in its error


def echo(question: str) -> str:
    """A question as repeated in an error: without CR or BOM, undecodable bytes as U+FFFD, and
    cut short (a million-character line is not printed back)."""
    q = re.sub("[\ud800-\udfff]", "\ufffd", question.replace("\r", "").replace("\ufeff", ""))
    return q if len(q) <= ECHO_LIMIT else q[:ECHO_LIMIT] + f"… ({len(q)} characters)"


def _stdin_text() -> TextIO:
    """Standard input as UTF-8 text whose undecodable bytes become lone surrogates, so one bad
    line is reported on its own instead of ending the batch."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        return sys.stdin
    return io.TextIOWrapper(buffer, encoding="utf-8", errors="surrogateescape", newline="\n")


def cmd_ask(args: argparse.Namespace, stdin: TextIO | None = None,
            out: TextIO | None = None) -> int:
    stdin, out = stdin or _stdin_text(), out or sys.stdout
    settings = settings_from(args)
    index = open_index(args, settings)
    searcher = Searcher(index, settings, warn=_warn)
    color = out.isatty() and not os.environ.get("NO_COLOR")
    if args.question:
        question = " ".join(args.question)
        try:
            answer = answer_one(searcher, question)
        except QuestionError as exc:
            print(f"newsqa: {exc}", file=sys.stderr)
            return EXIT_USAGE
        _print_answer(answer, index, args.json, color, out)
        return 0
    if getattr(args, "follow_ups", False):
        return _conversation(searcher, index, stdin, out, args.json, color)
    status = 0
    for raw in stdin:
        line = raw.rstrip("\n")
        try:
            answer = answer_one(searcher, line)
        except QuestionError as exc:
            status = EXIT_USAGE
            if args.json:
                out.write(json.dumps({"question": echo(line), "error": str(exc)},
                                     ensure_ascii=False) + "\n")
            else:
                out.write(f"newsqa: {exc}\n\n")
            out.flush()
            continue
        _print_answer(answer, index, args.json, color, out)
        if not args.json:
            out.write("\n")
        out.flush()
    return status


def _conversation(searcher: Searcher, index: Index, stdin: TextIO, out: TextIO, as_json: bool,
                  color: bool) -> int:
    """``ask --follow-ups``: each line a turn of one conversation, an empty line a new one."""
    from retrieval.conversation import Conversation, converse

    state, status = Conversation(), 0
    for raw in stdin:
        line = raw.rstrip("\n")
        if not line.strip():
            state = Conversation()
            continue
        try:
            reply, state = converse(searcher, state, line)
        except QuestionError as exc:
            status = EXIT_USAGE
            out.write(json.dumps({"question": echo(line), "error": str(exc)}, ensure_ascii=False)
                      + "\n" if as_json else f"newsqa: {exc}\n\n")
            out.flush()
            continue
        if as_json:
            out.write(json.dumps(render.reply_json(reply, index), ensure_ascii=False) + "\n")
        else:
            out.write(render.reply_terminal(reply, index, color) + "\n\n")
        out.flush()
    return status


def _print_answer(answer: Any, index: Index, as_json: bool, color: bool, out: TextIO) -> None:
    if as_json:
        out.write(json.dumps(render.to_json(answer, index), ensure_ascii=False) + "\n")
    else:
        out.write(render.terminal(answer, index, color) + "\n")


def cmd_sources(args: argparse.Namespace) -> int:
    index = open_index(args, settings_from(args))
    counts: dict[str, int] = {}
    for c in index.chunks:
        counts[c.article] = counts.get(c.article, 0) + 1
    corpus = Path(args.corpus).resolve()
    rows = [{"article": a.id, "file": _relative(a.path, corpus), "title": a.title,
             "source": a.source, "date": a.date,
             "authors": list(a.authors), "script": a.script, "paragraphs": len(a.paragraphs),
             "chunks": counts.get(a.id, 0), "retrievers": list(index.retrievers)}
            for a in index.articles.values()]
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return 0
    for i, r in enumerate(rows, 1):
        print(f"{i}. {r['title']} — {r['source'] or '?'}, {r['date'] or '?'}  "
              f"[{r['file']}; {r['paragraphs']} paragraphs, {r['chunks']} chunks]")
    print(f"retrievers: {'+'.join(index.retrievers)}")
    return 0


def _relative(path: str, corpus: Path) -> str:
    try:
        return Path(path).resolve().relative_to(corpus).as_posix()
    except (ValueError, OSError):
        return Path(path).name


def cmd_chat(args: argparse.Namespace) -> int:
    from .chat import run_chat

    settings = settings_from(args)
    index = open_index(args, settings)
    return run_chat(Searcher(index, settings, warn=_warn), sys.stdin, sys.stdout)


def cmd_eval(args: argparse.Namespace) -> int:
    from retrieval.evaluate import GOLD_DIR, evaluate, format_report, load_cmrc, load_gold, load_squad

    settings = settings_from(args)
    if args.dialogues:
        from retrieval.evaluate import evaluate_dialogues, format_dialogue_report, load_dialogues

        dialogues = load_dialogues(args.dialogues)
        index = open_index(args, settings)
        report = evaluate_dialogues(Searcher(index, settings, warn=_warn), dialogues)
        print(json.dumps(report, ensure_ascii=False, indent=1) if args.json else
              format_dialogue_report(report, args.failures))
        return 0
    if args.cmrc:
        corpus, questions = load_cmrc(args.cmrc, Path(".newsqa") / "cmrc2018-corpus")
        args.corpus = str(corpus)
    elif args.squad:
        files = [Path(f) for f in args.squad]
        name = "-".join(f.stem for f in files)[:60]
        corpus, questions = load_squad(files, Path(".newsqa") / f"{name}-corpus")
        args.corpus = str(corpus)
    else:
        questions = load_gold(args.questions or GOLD_DIR / "seeds.jsonl")
    if args.limit:
        questions = questions[:args.limit]
    index = open_index(args, settings)
    report = evaluate(Searcher(index, settings, warn=_warn), questions)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=1))
    else:
        print(format_report(report, args.failures))
    return 0


def parse_ids(value: str) -> frozenset[int]:
    """``"123, -100456"`` → ids; anything else is a ConfigError naming the format."""
    ids = set()
    for part in value.replace(",", " ").split():
        try:
            ids.add(int(part))
        except ValueError:
            raise ConfigError(f"allowed ids must be integers separated by commas (user ids, or "
                              f"group ids such as -1001234567890), not {part!r}") from None
    return frozenset(ids)


def parse_rate(value: str) -> tuple[int, float]:
    """``"5/60"`` → (5, 60.0); ``"0"`` turns the limit off."""
    count, _, window = value.strip().partition("/")
    try:
        return int(count), float(window or 60)
    except ValueError:
        raise ConfigError(f"--rate-limit must be N/SECONDS such as 5/60 (or 0 for no limit), "
                          f"not {value!r}") from None


def read_token(token_file: str | None) -> str:
    """The bot token from ``token_file`` or ``TELEGRAM_BOT_TOKEN``."""
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the token file {token_file}: {exc.strerror}") from None
    else:
        token = os.environ.get("TELEGRAM_BOT_TOKEN", "").strip()
    if not token:
        raise ConfigError("no bot token: set TELEGRAM_BOT_TOKEN or pass --token-file FILE "
                          "(create a bot and get its token from @BotFather)")
    return token


def _stop(*_: object) -> None:
    raise KeyboardInterrupt


def cmd_telegram(args: argparse.Namespace) -> int:
    import logging
    import signal

    # A bot started from a script in the background inherits SIGINT ignored; Ctrl-C and SIGTERM
    # must stop it at every stage, also while it waits for the network (python-telegram-bot
    # installs its own handlers only once polling runs).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop)

    from . import delivery, telegram

    token = read_token(args.token_file)
    limit, window = parse_rate(args.rate_limit)
    try:
        forget = float(args.forget_after) * 60
    except ValueError:
        raise ConfigError(f"--forget-after must be a number of minutes, not {args.forget_after!r}") from None
    config = telegram.BotConfig(token=token, base_url=args.base_url or None,
                                allowed_ids=parse_ids(args.allowed_ids), rate_limit=limit,
                                rate_window=window, forget_after=max(forget, 1.0),
                                journal=args.journal or None)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redactor = delivery.install_token_filter(token)
    if args.log_level != "DEBUG":  # httpx logs every poll at INFO
        logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = settings_from(args)
    searcher = Searcher(open_index(args, settings), settings, warn=_warn)
    searcher.warm_up()
    try:
        return telegram.run(searcher, config)
    except NewsqaError as exc:
        raise type(exc)(redactor.redact(str(exc))) from None


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "index": cmd_index, "ask": cmd_ask, "chat": cmd_chat, "sources": cmd_sources,
    "eval": cmd_eval, "telegram": cmd_telegram,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``newsqa`` console script."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except NewsqaError as exc:
        print(f"newsqa: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except (OSError, UnicodeError) as exc:  # a path or file the user named: one line, no traceback
        print(f"newsqa: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

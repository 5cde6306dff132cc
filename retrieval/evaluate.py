"""``newsqa eval``: retrieval and answer quality on gold question sets.

A gold question is one JSON line: ``{"id", "question", "kind", "article",
"paragraph", "answers"}``. ``kind`` groups the report (hans, hant, cross,
paraphrase, offtopic, cmrc); ``article`` is None for questions the articles
do not answer, which must be declined.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .answer import ask, compose
from .errors import ConfigError, QuestionError
from .search import Searcher
from .text import to_simplified


@dataclass(frozen=True)
class GoldQuestion:
    """One question with where its answer is."""

    id: str
    question: str
    kind: str
    article: str | None
    paragraph: int | None
    answers: tuple[str, ...]
    wrong: tuple[str, ...] = ()  # a trap's neighbour: answering with it is wrong


GOLD_DIR = Path(__file__).parent / "gold"  # shipped with the package


def load_gold(path: str | Path) -> list[GoldQuestion]:
    """Read a gold set (JSON Lines).

    Raises:
        ConfigError: The file cannot be read, or a line is not a gold question.
    """
    out = []
    for n, d in _json_lines(path, "the gold questions"):
        try:
            out.append(GoldQuestion(str(d["id"]), str(d["question"]), str(d["kind"]), d.get("article"),
                                    d.get("paragraph"), tuple(d.get("answers", ())),
                                    tuple(d.get("wrong", ()))))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path}, line {n}: not a gold question ({type(exc).__name__}: {exc}); "
                              f"expected {{\"id\", \"question\", \"kind\", \"article\", "
                              f"\"paragraph\", \"answers\"}}") from None
    return out


def _json_lines(path: str | Path, what: str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) of each non-empty line of a JSON Lines file.

    Raises:
        ConfigError: The file cannot be read, or a line is not JSON.
    """
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from None
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                yield n, json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{path}, line {n}: not JSON ({exc})") from None


def load_cmrc(folder: str | Path, corpus_dir: Path) -> tuple[Path, list[GoldQuestion]]:
    """CMRC 2018 dev + trial as a corpus (one article per paragraph) and questions; the
    questions' kinds are "cmrc_dev" and "cmrc_trial"."""
    files = [Path(folder) / f"squad_cmrc2018_{part}.json" for part in ("dev", "trial")]
    return load_squad(files, corpus_dir, "CMRC 2018",
                      {f: f"cmrc_{f.stem.rsplit('_', 1)[-1]}" for f in files})


def load_squad(files: list[Path], corpus_dir: Path, source: str = "",
               kinds: dict[Path, str] | None = None) -> tuple[Path, list[GoldQuestion]]:
    """SQuAD-format files as a corpus (one article per paragraph) and questions.

    Articles are written once to ``corpus_dir`` as Markdown with front matter,
    so they go through the same loading and indexing code as users' files.

    Raises:
        ConfigError: A file is missing or not in SQuAD format.
    """
    questions: list[GoldQuestion] = []
    corpus_dir.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, str] = {}
    for file in files:
        kind = (kinds or {}).get(file) or re.sub(r"\W+", "_", file.stem).lower()
        try:
            data = json.loads(Path(file).read_text("utf-8"))["data"]
            for doc in data:
                for i, para in enumerate(doc["paragraphs"]):
                    aid = f"{doc.get('id', doc.get('title', 'doc'))}_{i}".replace("/", "_")
                    title = str(doc.get("title", aid)).replace("\n", " ")
                    wanted[f"{aid}.md"] = (f"---\ntitle: {title}\nsource: {source or file.stem}\n"
                                           f"---\n{para['context'].strip()}\n")
                    for qa in para["qas"]:
                        questions.append(GoldQuestion(str(qa["id"]), qa["question"], kind, aid, None,
                                                      tuple(a["text"] for a in qa["answers"])))
        except FileNotFoundError:
            raise ConfigError(f"{file} does not exist") from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{file} is not a SQuAD-format JSON file "
                              f"({type(exc).__name__}: {exc})") from None
    for name, text in wanted.items():
        path = corpus_dir / name
        if not path.exists() or path.read_text("utf-8") != text:
            path.write_text(text, "utf-8")
    return corpus_dir, questions


def _norm(s: str) -> str:
    return re.sub(r"\s+", "", to_simplified(s)).lower()


def evaluate(searcher: Searcher, questions: list[GoldQuestion]) -> dict[str, Any]:
    """Answer every question and aggregate the metrics per kind and overall."""
    rows = []
    for q in questions:
        t0 = time.perf_counter()
        try:
            answer = ask(searcher, q.question)
        except QuestionError:  # CMRC has a few empty questions: they count as misses
            answer = compose(q.question, [], searcher.index)
        hits = list(answer.hits)
        ms = (time.perf_counter() - t0) * 1000
        ranks = [h.chunk.article for h in hits]
        rank = ranks.index(q.article) + 1 if q.article in ranks else None
        prank = next((h.rank for h in hits if h.chunk.article == q.article and q.paragraph and
                      h.chunk.first_paragraph <= q.paragraph <= h.chunk.last_paragraph), None)
        quoted = _norm("".join(c.quote for c in answer.citations))
        first = answer.citations[0] if answer.citations else None
        rows.append({
            "id": q.id, "kind": q.kind, "question": q.question, "offtopic": q.article is None,
            "rank": rank, "passage_rank": prank if q.paragraph else rank,
            "answered": answer.answered,
            "contains": any(_norm(a) in quoted for a in q.answers) if q.answers else None,
            "first_ok": (first is not None and first.article == q.article and
                         (q.paragraph is None or first.paragraph == q.paragraph)),
            "length": len("".join(c.display for c in answer.citations)), "ms": ms,
            "answer": answer.text, "gold": list(q.answers), "evidence": answer.evidence,
            "span": answer.answer_span,
            "em": max((exact_match(answer.answer_span or "", a) for a in q.answers), default=None),
            "f1": max((char_f1(answer.answer_span or "", a) for a in q.answers), default=None),
            "neighbour": any(_norm(w) in _norm(answer.text) for w in q.wrong) if q.wrong else None,
        })
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r["kind"]].append(r)
    report = {"questions": len(rows), "by_kind": {k: _metrics(v) for k, v in sorted(groups.items())},
              "overall": _metrics(rows), "rows": rows}
    chinese = [r for r in rows if not r["offtopic"]]
    report["answerable"] = _metrics(chinese) if chinese else {}
    return report


def _metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    on = [r for r in rows if not r["offtopic"]]
    off = [r for r in rows if r["offtopic"]]
    m: dict[str, Any] = {"n": len(rows)}
    if on:
        m["hit@1"] = _mean(r["rank"] == 1 for r in on)
        m["hit@5"] = _mean(r["rank"] is not None and r["rank"] <= 5 for r in on)
        m["mrr"] = _mean(1 / r["rank"] if r["rank"] else 0 for r in on)
        m["passage_hit@1"] = _mean(r["passage_rank"] == 1 for r in on)
        m["passage_mrr"] = _mean(1 / r["passage_rank"] if r["passage_rank"] else 0 for r in on)
        with_gold = [r for r in on if r["contains"] is not None]
        m["contains"] = _mean(r["contains"] for r in with_gold) if with_gold else None
        m["first_citation"] = _mean(r["first_ok"] for r in on)
        m["answered"] = _mean(r["answered"] for r in on)
        m["false_decline"] = 1.0 - m["answered"]
        scored = [r for r in on if r["em"] is not None]
        m["em"] = _mean(r["em"] for r in scored) if scored else None
        m["f1"] = _mean(r["f1"] for r in scored) if scored else None
        traps = [r for r in on if r["neighbour"] is not None]
        if traps:
            m["neighbour"] = sum(bool(r["neighbour"]) for r in traps)
        m["median_length"] = statistics.median(r["length"] for r in on if r["answered"]) \
            if any(r["answered"] for r in on) else 0
    if off:
        m["declined"] = _mean(not r["answered"] for r in off)
    m["ms_per_question"] = statistics.mean(r["ms"] for r in rows) if rows else 0.0
    return m


# CMRC 2018's official evaluation (cmrc2018_evaluate.py): punctuation removed, Chinese
# characters one token each, Latin words and numbers whole; F1 over the longest common
# substring of tokens; the best over the gold answers.
_PUNCT = set("-:_*^/\\~`+=，。：？！“”；’《》……·、「」（）－～『』,.!?;'\"()[]<>{}【】")


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    word = ""
    for ch in to_simplified(text).lower().strip():
        if ch in _PUNCT or ch.isspace():
            if word:
                out.append(word)
                word = ""
            continue
        if re.match(r"[\u4e00-\u9fa5]", ch):
            if word:
                out.append(word)
                word = ""
            out.append(ch)
        else:
            word += ch
    if word:
        out.append(word)
    return out


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the two are equal once punctuation and spaces are removed."""
    return float("".join(_tokens(prediction)) == "".join(_tokens(gold)))


def char_f1(prediction: str, gold: str) -> float:
    """F1 of the longest common run of tokens (CMRC 2018's definition)."""
    p, g = _tokens(prediction), _tokens(gold)
    if not p or not g:
        return 0.0
    best = 0
    table = [0] * (len(g) + 1)
    for i in range(1, len(p) + 1):
        prev = 0
        for j in range(1, len(g) + 1):
            cur = table[j]
            table[j] = prev + 1 if p[i - 1] == g[j - 1] else 0
            best = max(best, table[j])
            prev = cur
    if not best:
        return 0.0
    precision, recall = best / len(p), best / len(g)
    return 2 * precision * recall / (precision + recall)


def _mean(values: Any) -> float:
    vals = [float(v) for v in values]
    return sum(vals) / len(vals) if vals else 0.0


_COLS = ("n", "hit@1", "hit@5", "mrr", "passage_hit@1", "contains", "em", "f1",
         "first_citation", "false_decline", "declined", "neighbour", "median_length",
         "ms_per_question")


def format_report(report: dict[str, Any], failures: int = 0) -> str:
    """A plain-text table of the report, optionally followed by missed questions."""
    widths = [max(len(c) + 2, 8) for c in _COLS]
    head = f"{'kind':<14}" + "".join(f"{c:>{w}}" for c, w in zip(_COLS, widths, strict=True))
    lines = [head]
    for name, m in [*report["by_kind"].items(), ("overall", report["overall"])]:
        cells = []
        for c, w in zip(_COLS, widths, strict=True):
            v = m.get(c)
            cells.append(f"{'-':>{w}}" if v is None else
                         f"{v:>{w}d}" if isinstance(v, int) else f"{v:>{w}.3f}")
        lines.append(f"{name:<14}" + "".join(cells))
    if failures:
        missed = [r for r in report["rows"] if (r["offtopic"] and r["answered"]) or
                  (not r["offtopic"] and (r["rank"] != 1 or r["contains"] is False))]
        lines.append(f"\n{len(missed)} missed; first {min(failures, len(missed))}:")
        for r in missed[:failures]:
            lines.append(f"- [{r['kind']}] {r['question']}  rank={r['rank']} "
                         f"gold={r['gold'][:1]} ev={r['evidence']:.2f}\n    → {r['answer'][:160]}")
    return "\n".join(lines)


def load_dialogues(path: str | Path) -> list[dict[str, Any]]:
    """Read a dialogue gold set: one JSON object per line, ``{"id", "turns": [{"kind",
    "question", "answers", "subject" | "choice"}]}``.

    Raises:
        ConfigError: The file is missing or a line is not such an object.
    """
    out = []
    for n, d in _json_lines(path, "the dialogues"):
        if not isinstance(d, dict) or not isinstance(d.get("turns"), list) or \
                not all(isinstance(t, dict) and "question" in t for t in d["turns"]):
            raise ConfigError(f"{path}, line {n}: not a dialogue (no turns with questions)")
        out.append(d)
    return out


def evaluate_dialogues(searcher: Searcher, dialogues: list[dict[str, Any]]) -> dict[str, Any]:
    """Play every dialogue through :func:`~retrieval.conversation.converse` and score each turn
    by its kind: the answer holds the gold (first, follow-up, switch, more), a topic switch
    is answered as asked, an ambiguous question is offered a choice that includes the right
    entity; a rewrite of a question that names its own subject, or one that misses the
    expected subject, is a wrong rewrite."""
    from .conversation import Conversation, converse

    rows = []
    for d in dialogues:
        state = Conversation()
        for t in d["turns"]:
            kind, question = t.get("kind", "first"), t["question"]
            t0 = time.perf_counter()
            try:
                reply, state = converse(searcher, state, question)
            except QuestionError:
                rows.append({"dialogue": d["id"], "kind": kind, "question": question, "ok": False,
                             "wrong_rewrite": False, "ms": 0.0, "interpreted": "", "answer": ""})
                continue
            ms = (time.perf_counter() - t0) * 1000
            answer = reply.answer
            text = _norm(" ".join(c.quote for c in answer.citations)) if answer else ""
            gold = [_norm(a) for a in t.get("answers", [])]
            contains = any(g in text for g in gold) if gold else bool(answer and answer.answered)
            subject = _norm(t.get("subject", ""))
            rewritten = reply.rewritten and reply.kind != "pick"
            if kind == "ambiguous":
                ok = bool(reply.choices) and any(_norm(t.get("choice", "")) in _norm(c) for c in reply.choices)
            elif kind == "switch":
                ok = not rewritten and contains
            else:
                ok = contains
            wrong = (kind in ("first", "switch") and rewritten) or (
                kind == "follow-up" and rewritten and bool(subject) and subject not in _norm(reply.interpreted))
            rows.append({"dialogue": d["id"], "kind": kind, "question": question, "ok": ok,
                         "wrong_rewrite": wrong, "ms": ms, "interpreted": reply.interpreted,
                         "answer": answer.text if answer else (reply.note or " / ".join(reply.choices))})
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in sorted({r["kind"] for r in rows}):
        group = [r for r in rows if r["kind"] == kind]
        by_kind[kind] = {"n": len(group), "ok": _mean(r["ok"] for r in group),
                         "wrong_rewrites": sum(r["wrong_rewrite"] for r in group),
                         "ms_per_turn": statistics.mean(r["ms"] for r in group)}
    return {"dialogues": len(dialogues), "turns": len(rows), "by_kind": by_kind,
            "wrong_rewrites": sum(r["wrong_rewrite"] for r in rows), "rows": rows}


def format_dialogue_report(report: dict[str, Any], failures: int = 0) -> str:
    """The dialogue report as a table; "ok" means, by kind: the answer holds the gold
    (first, follow-up, more), answered as asked (switch), offered as a choice (ambiguous)."""
    lines = [f"{'turn kind':<12}{'n':>6}{'ok':>8}{'wrong_rewrites':>16}{'ms_per_turn':>13}"]
    for kind, m in report["by_kind"].items():
        lines.append(f"{kind:<12}{m['n']:>6d}{m['ok']:>8.3f}{m['wrong_rewrites']:>16d}"
                     f"{m['ms_per_turn']:>13.1f}")
    lines.append(f"{report['dialogues']} dialogues, {report['turns']} turns, "
                 f"{report['wrong_rewrites']} wrong rewrites")
    if failures:
        missed = [r for r in report["rows"] if not r["ok"] or r["wrong_rewrite"]]
        lines.append(f"\n{len(missed)} missed; first {min(failures, len(missed))}:")
        for r in missed[:failures]:
            lines.append(f"- [{r['dialogue']} {r['kind']}] {r['question']} → as “{r['interpreted']}”"
                         f"\n    → {r['answer'][:150]}")
    return "\n".join(lines)

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


def load_gold(path: str | Path) -> list[GoldQuestion]:
    """Read a gold set (JSON Lines)."""
    out = []
    for line in Path(path).read_text("utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            out.append(GoldQuestion(str(d["id"]), d["question"], d["kind"], d.get("article"),
                                    d.get("paragraph"), tuple(d.get("answers", ())),
                                    tuple(d.get("wrong", ()))))
    return out


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

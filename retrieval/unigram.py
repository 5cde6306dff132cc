"""A small XLM-R (SentencePiece unigram) tokenizer that loads in a tenth of a second.

The ``tokenizers`` library takes 1.5 s here to load XLM-R's 250,002-piece
``tokenizer.json``, more than a whole cold ``newsqa ask`` may take, to then
tokenize twenty characters. This module does what that tokenizer does for the
bundled model, for a question: the per-character normalisation map, spaces
collapsed, the metaspace ``▁`` prepended and split on, then the Viterbi path over
the pieces' scores, runs of unknown characters fused into one ``<unk>`` (as
``tokenizers`` does), ``<s>`` … ``</s>`` around it. The index builder checks that
it gives the library's ids on the check texts before using it.
"""

from __future__ import annotations

import base64
import json
import re
from bisect import bisect_left
from pathlib import Path

import numpy as np

_SPACES = re.compile(" {2,}")
_META = "▁"
_UNK_PENALTY = 10.0
_SEP = "\x00"  # never in a piece: normalisation removes control characters


class UnigramTokenizer:
    """Token ids for text, as XLM-R's ``tokenizers`` pipeline gives them.

    Args:
        pieces: Vocabulary, id order.
        scores: Log-probability of each piece.
        norm: Per-character normalisation (character -> replacement).
        unk: Id of ``<unk>``; bos, eos: ids put around the text; pad: id padding batches.
        max_length: Longest output, ``<s>`` and ``</s>`` included.
    """

    def __init__(self, pieces: list[str], scores: list[float], norm: dict[str, str], unk: int,
                 bos: int, eos: int, pad: int = 1, max_length: int = 512,
                 order: list[int] | None = None, longest: int = 0) -> None:
        # Sorted pieces searched by bisection instead of a dict: building a 250,000-entry
        # dict took 0.15 s of every cold start; a question needs a few hundred look-ups.
        if order is None:
            order = sorted(range(len(pieces)), key=pieces.__getitem__)
            pieces = [pieces[i] for i in order]
        self._sorted, self._order = pieces, order
        self._scores = scores
        self._norm = str.maketrans(norm)
        self._longest = longest or max(len(p) for p in pieces)
        self._unk_score = min(scores) - _UNK_PENALTY
        self.unk, self.bos, self.eos, self.pad, self.max_length = unk, bos, eos, pad, max_length

    @classmethod
    def load(cls, path: str | Path, max_length: int = 512) -> UnigramTokenizer:
        """Read a file written by :func:`save`."""
        d = json.loads(Path(path).read_text("utf-8"))
        # One joined string and raw numbers: a list of 250,000 JSON strings and numbers took
        # 0.5 s to read, this a tenth of that.
        scores = np.frombuffer(base64.b64decode(d["scores"]), dtype="<f4").tolist()
        order = np.frombuffer(base64.b64decode(d["order"]), dtype="<i4").tolist()
        return cls(d["sorted"].split(_SEP), scores, d["norm"], d["unk"], d["bos"], d["eos"],
                   d["pad"], max_length, order, d["longest"])

    def _id(self, piece: str) -> int | None:
        i = bisect_left(self._sorted, piece)
        return self._order[i] if i < len(self._sorted) and self._sorted[i] == piece else None

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` with ``<s>``/``</s>``, truncated to ``max_length``."""
        norm = _SPACES.sub(" ", text.translate(self._norm)).replace(" ", _META)
        if not norm:
            return [self.bos, self.eos]
        if not norm.startswith(_META):
            norm = _META + norm
        ids: list[int] = []
        for word in re.split(f"(?={_META})", norm):
            if word:
                ids.extend(self._viterbi(word))
        return [self.bos, *ids[:self.max_length - 2], self.eos]

    def _viterbi(self, word: str) -> list[int]:
        n = len(word)
        best = [0.0] + [float("-inf")] * n
        back: list[tuple[int, int]] = [(0, -1)] * (n + 1)
        lookup, scores = self._id, self._scores
        for start in range(n):
            here = best[start]
            if here == float("-inf"):
                continue
            single = False
            for end in range(start + 1, min(n, start + self._longest) + 1):
                i = lookup(word[start:end])
                if i is None:
                    continue
                if end == start + 1:
                    single = True
                score = here + scores[i]
                if back[end][1] == -1 or score > best[end]:
                    best[end], back[end] = score, (start, i)
            if not single:
                score = here + self._unk_score
                if back[start + 1][1] == -1 or score > best[start + 1]:
                    best[start + 1], back[start + 1] = score, (start, self.unk)
        out: list[int] = []
        end = n
        while end > 0:
            start, i = back[end]
            if not (i == self.unk and out and out[-1] == self.unk):
                out.append(i)  # a run of unknown characters is one <unk>
            end = start
        out.reverse()
        return out

    def batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Ids and attention mask of ``texts``, padded with ``<pad>`` to the longest."""
        encoded = [self.encode(t) for t in texts]
        width = max(len(e) for e in encoded)
        ids = np.full((len(encoded), width), self.pad, dtype=np.int64)
        mask = np.zeros((len(encoded), width), dtype=np.int64)
        for row, e in enumerate(encoded):
            ids[row, :len(e)] = e
            mask[row, :len(e)] = 1
        return ids, mask


def save(path: str | Path, pieces: list[str], scores: np.ndarray, norm: dict[int, str],
         specials: dict[str, int]) -> None:
    """Write what :class:`UnigramTokenizer` needs as one JSON file."""
    if any(_SEP in p for p in pieces):
        raise ValueError("a piece holds the separator character")
    order = sorted(range(len(pieces)), key=pieces.__getitem__)
    Path(path).write_text(json.dumps({
        "sorted": _SEP.join(pieces[i] for i in order),
        "order": base64.b64encode(np.asarray(order, dtype="<i4").tobytes()).decode("ascii"),
        "scores": base64.b64encode(np.asarray(scores, dtype="<f4").tobytes()).decode("ascii"),
        "longest": max(len(p) for p in pieces),
        "norm": {chr(cp): out for cp, out in norm.items()},
        "unk": specials["unk"], "bos": specials["bos"], "eos": specials["eos"],
        "pad": specials["pad"]}, ensure_ascii=False), "utf-8")

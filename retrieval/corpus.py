"""Articles: reading files, front matter, page-chrome removal, metadata.

Every ``.txt`` and ``.md`` file in the corpus folder and its subfolders is one
article; its path relative to the folder, without the extension, is its id
(``seeds/a.txt`` is ``a``, ``seeds/2024-05/b.md`` is ``2024-05/b``). Files whose
real path lies outside the folder (symlinks to /etc/passwd) are never read.
Paragraph offsets always point into the decoded original text, so any quote can
be cut from it exactly.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CorpusError
from .text import Script, detect_script

ARTICLE_SUFFIXES = (".txt", ".md")
MAX_ARTICLE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Paragraph:
    """One body paragraph: its 1-based number, offsets into the article text, heading."""

    number: int
    start: int
    end: int
    heading: str | None = None


@dataclass(frozen=True)
class Article:
    """A news article with its metadata and body paragraphs.

    Attributes:
        id: File stem.
        text: The decoded file, unchanged; paragraph offsets point into it.
        title: Headline.
        subtitle: Sub-headline or original print headline, if any.
        source: Outlet (e.g. 聊城日报, 人民日報), as written in the article.
        date: Publication date, ISO ``YYYY-MM-DD``.
        url: Address of the page, when known.
        authors: Reporters named in the byline.
        script: "hans" or "hant".
        paragraphs: Body paragraphs, chrome and headings left out.
        sha256: Hash of the raw file bytes, used to detect changes.
        encoding: The encoding the file was decoded with.
    """

    id: str
    text: str
    title: str
    subtitle: str | None = None
    source: str | None = None
    date: str | None = None
    url: str | None = None
    authors: tuple[str, ...] = ()
    script: Script = "hans"
    paragraphs: tuple[Paragraph, ...] = ()
    sha256: str = ""
    encoding: str = "utf-8"
    path: str = field(default="", compare=False)

    def paragraph_text(self, p: Paragraph) -> str:
        """The original text of paragraph ``p``."""
        return self.text[p.start:p.end]

    def paragraph_at(self, offset: int) -> Paragraph | None:
        """The paragraph containing character ``offset``, if any."""
        for p in self.paragraphs:
            if p.start <= offset < p.end:
                return p
        return None


Warn = Callable[[str], None]


def article_files(folder: str | Path, warn: Warn | None = None) -> dict[str, Path]:
    """``{relative file name: path}`` of every article file under ``folder``.

    Subfolders are read too (hidden ones are not); a file or link whose real path is outside
    the folder is skipped, and so is a second file with the same id (``a.txt`` beside
    ``a.md``), each with a warning naming the files.

    Raises:
        CorpusError: The folder does not exist or is not a folder.
    """
    root = Path(folder)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise CorpusError(f"corpus folder {root} {what}; pass --corpus DIR with .txt or .md "
                          f"articles")
    warn = warn or (lambda _msg: None)
    real_root = root.resolve()
    out: dict[str, Path] = {}
    ids: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):  # symlinked folders are not entered
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or path.suffix.lower() not in ARTICLE_SUFFIXES:
                continue
            rel = path.relative_to(root).as_posix()
            try:
                real = path.resolve(strict=True)
            except (OSError, RuntimeError):
                warn(f"skipped {rel}: a broken link")
                continue
            if real_root not in real.parents or not real.is_file():
                warn(f"skipped {rel}: it points outside the corpus folder")
                continue
            article_id = rel[:-len(path.suffix)]
            if article_id in ids:
                warn(f"skipped {rel}: {ids[article_id]} has the same name (article {article_id!r}); "
                     f"rename one of them")
                continue
            ids[article_id] = rel
            out[rel] = path
    return out


def load_corpus(folder: str | Path, warn: Warn | None = None,
                max_bytes: int = MAX_ARTICLE_BYTES) -> list[Article]:
    """Read every article under ``folder``, sorted by id.

    Unreadable files are skipped with a one-line warning through ``warn``.

    Raises:
        CorpusError: The folder does not exist or holds no readable article.
    """
    warn = warn or (lambda _msg: None)
    files = article_files(folder, warn)
    articles = []
    for rel, path in files.items():
        try:
            article = read_article(path, warn, max_bytes, rel[:-len(path.suffix)])
        except CorpusError as exc:
            warn(f"skipped {rel}: {exc}")
            continue
        articles.append(article)
    if not articles:
        raise CorpusError(f"no readable .txt or .md article in {folder}")
    return sorted(articles, key=lambda a: a.id)


def read_article(path: str | Path, warn: Warn | None = None, max_bytes: int = MAX_ARTICLE_BYTES,
                 article_id: str | None = None) -> Article:
    """Read and parse one article file.

    Raises:
        CorpusError: The file is empty, binary, too large or undecodable, or holds front
            matter and nothing else.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:  # read at most one byte past the limit
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise CorpusError(f"cannot read ({exc.strerror})") from exc
    if len(raw) > max_bytes:
        raise CorpusError(f"larger than the {max_bytes / 2**20:g} MiB limit (Settings.max_article_mib)")
    text, encoding = decode(raw)
    if encoding != "utf-8" and warn:
        warn(f"{path.name} is not UTF-8; read it as {encoding}")
    if text.startswith("---") and _FRONT.match(text) is None and warn:
        warn(f"{path.name}: front matter starts with --- but is never closed; read as text")
    article = parse_article(article_id or path.stem, text, sha256=hashlib.sha256(raw).hexdigest(),
                            encoding=encoding, path=str(path))
    if not article.paragraphs:
        raise CorpusError("no text besides front matter")
    return article


def decode(raw: bytes) -> tuple[str, str]:
    """Decode article bytes: UTF-8 (with or without BOM), then GB18030, then Big5.

    Raises:
        CorpusError: Empty, binary (NUL bytes) or undecodable input.
    """
    if not raw.strip():
        raise CorpusError("empty file")
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 with its byte-order mark
        try:
            return _clean(raw.decode("utf-16")), "utf-16"
        except UnicodeDecodeError as exc:
            raise CorpusError("starts like UTF-16 but does not decode as it") from exc
    if b"\x00" in raw[:8192]:
        raise CorpusError("binary file (contains NUL bytes)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    else:
        if _badness(text) > len(text) // 100:
            raise CorpusError("binary file (control characters)")
        return _clean(text), "utf-8"
    # Big5 bytes often decode as GB18030 too, into private-use and rare
    # characters; keep whichever reading looks most like text.
    best: tuple[int, str, str] | None = None
    for encoding in ("gb18030", "big5"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        bad = _badness(text)
        if best is None or bad < best[0]:
            best = (bad, text, encoding)
    if best is None or best[0] > len(best[1]) // 100:
        raise CorpusError("not UTF-8, GB18030 or Big5 text")
    return _clean(best[1]), best[2]


def _clean(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _badness(text: str) -> int:
    """Control and private-use characters: signs of a wrong decoding."""
    return sum(1 for ch in text if (ord(ch) < 32 and ch not in "\n\r\t\f")
               or 0xE000 <= ord(ch) <= 0xF8FF)


# --- parsing -----------------------------------------------------------------

_FRONT = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.S)
_CHROME = re.compile(
    r"^(上一篇|下一篇|放大\+.*|[大中小]字[号號]|默[认認].*|分享[让讓]更多人看到|返回[顶頂]部"
    r"|打印(本页|本頁)?|[关關]闭窗口|[关關]閉窗口|[责責][编編][:：].*|[(（][责責][编編][:：].*[)）]"
    r"|《[^》]{1,20}》\s*[(（]\s*\d{4}年\d{1,2}月\d{1,2}日.*版\s*[)）]"
    r"|.*content_\d+\.html.*|.*enpproperty.*)$")
_TAIL_CHROME = re.compile(r"(分享[让讓]更多人看到|返回[顶頂]部)\s*$")
_DATE = re.compile(r"(\d{4})\s*[-年/.]\s*(\d{1,2})\s*[-月/.]\s*(\d{1,2})")
_SOURCE = re.compile(r"[来來]源[:：]\s*([^\s|｜]+)")
_OUTLET = re.compile(r"^\S{1,12}?(?:日[报報]|晚[报報]|[时時][报報]|早[报報]|商[报報]|[报報]|新[闻聞][网網])$")
_BYLINE = re.compile(r"^[■□●◆]?\s*(?:本[报報]|新华社|新華社|特约|特約)?[记記]者\s*(.+)$")
_ORIG_TITLE = re.compile(r"^原[标標]题[:：]\s*(.+)$")
_SENT_END = re.compile(r"[。！？!?…；;﹔][」』”’）)】》\"']*$")


def parse_article(article_id: str, text: str, *, sha256: str = "", encoding: str = "utf-8",
                  path: str = "") -> Article:
    """Turn the text of a page into an :class:`Article`.

    Front matter (``title``, ``source``, ``date``, ``url``, ``author``)
    overrides what is extracted from the page itself.
    """
    meta: dict[str, str] = {}
    body_start = 0
    m = _FRONT.match(text)
    if m:
        meta = _parse_front_matter(m.group(1))
        body_start = m.end()
    elif text.startswith("---"):  # never closed: not front matter, and not the headline either
        body_start = len(text.split("\n", 1)[0]) + 1 if "\n" in text else len(text)

    lines = _lines(text, body_start)
    title = meta.get("title")
    subtitle = source = date = url = None
    authors: tuple[str, ...] = ()
    breadcrumbs = [s for _, _, s in lines if ">>" in s or "＞＞" in s]
    paragraphs: list[Paragraph] = []
    heading: str | None = None
    in_heading = False
    in_body = False
    for start, end, line in lines:
        plain = line.lstrip("#").strip() if line.startswith("#") else line
        if _CHROME.match(plain) or plain in breadcrumbs or _is_site_name(plain, breadcrumbs):
            date = date or _date_in(plain)
            source = source or _outlet_in(plain)
            continue
        if (om := _ORIG_TITLE.match(plain)) is not None:
            subtitle = subtitle or om.group(1).strip()
            continue
        if not in_body:
            if title is None:
                title = plain
                continue
            if (bm := _BYLINE.match(plain)) is not None and len(plain) <= 40:
                authors = tuple(re.split(r"[\s、，,]+", bm.group(1).strip()))
                continue
            if len(plain) <= 60 and (_SOURCE.search(plain) or _DATE.match(plain)):
                date = date or _date_in(plain)
                if sm := _SOURCE.search(plain):
                    source = source or sm.group(1).split("-")[-1].split("－")[-1]
                continue
            if not _SENT_END.search(plain) and len(plain) <= 40 and not paragraphs:
                subtitle = subtitle or plain.lstrip("—-").strip()
                continue
            in_body = True
        if _is_heading(line, plain):
            if not in_heading:
                heading = plain
            in_heading = True
            continue
        in_heading = False
        paragraphs.append(Paragraph(len(paragraphs) + 1, start, end, heading))

    if not paragraphs:  # a one-line article, or a headline and one paragraph: still searchable
        body = [(a, b, t) for a, b, t in lines if not _CHROME.match(t)]
        paragraphs = [Paragraph(i + 1, a, b, None) for i, (a, b, _) in enumerate(body[1:] or body)]
    date = meta.get("date") or date
    return Article(
        id=article_id,
        text=text,
        title=meta.get("title") or title or article_id,
        subtitle=meta.get("subtitle") or subtitle,
        source=meta.get("source") or source,
        date=_iso_date(date) if date else None,
        url=meta.get("url") or url,
        authors=tuple(re.split(r"[\s、，,]+", meta["author"])) if meta.get("author") else authors,
        script=detect_script("".join(text[p.start:p.end] for p in paragraphs[:20]) or text),
        paragraphs=tuple(paragraphs),
        sha256=sha256,
        encoding=encoding,
        path=path,
    )


def _lines(text: str, offset: int) -> list[tuple[int, int, str]]:
    """Non-empty lines from ``offset`` on, as (start, end, stripped text) with tight offsets."""
    out = []
    for m in re.finditer(r"[^\n]+", text[offset:]):
        raw = m.group(0)
        stripped = raw.strip().replace("\u3000", " ").strip()
        if not stripped:
            continue
        lead = len(raw) - len(raw.lstrip(" \t\u3000\xa0"))
        trail = len(raw) - len(raw.rstrip(" \t\u3000\xa0"))
        start = offset + m.start() + lead
        end = offset + m.end() - trail
        # A page's last line may run straight into trailing chrome ("...返回頂部").
        if (tm := _TAIL_CHROME.search(stripped)) and tm.start() > 0:
            end -= len(stripped) - tm.start()
            stripped = stripped[:tm.start()].rstrip()
        out.append((start, end, stripped))
    return out


def _is_heading(line: str, plain: str) -> bool:
    if line.startswith("#"):
        return True
    return len(plain) <= 40 and not _SENT_END.search(plain) and "。" not in plain


def _is_site_name(line: str, breadcrumbs: list[str]) -> bool:
    return any(b.startswith(line) and len(line) < len(b) for b in breadcrumbs)


def _date_in(line: str) -> str | None:
    m = _DATE.search(line)
    return f"{m.group(1)}-{int(m.group(2)):02d}-{int(m.group(3)):02d}" if m else None


def _iso_date(value: str) -> str:
    return _date_in(value) or value.strip()


def _outlet_in(line: str) -> str | None:
    for token in line.split():
        if _OUTLET.match(token):
            return token
    return None


def _parse_front_matter(block: str) -> dict[str, str]:
    meta = {}
    for line in block.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            meta[key.strip().lower()] = value.strip().strip("\"'")
    return meta


def corpus_files(folder: str | Path) -> dict[str, tuple[int, int]]:
    """``{relative file name: (size, mtime_ns)}`` of the article files, without reading them."""
    out = {}
    for rel, path in article_files(folder).items():
        st = path.stat()
        out[rel] = (st.st_size, st.st_mtime_ns)
    return out


def article_to_dict(a: Article) -> dict:
    """JSON-ready form of an article (for the index's articles file)."""
    return {"id": a.id, "title": a.title, "subtitle": a.subtitle, "source": a.source,
            "date": a.date, "url": a.url, "authors": list(a.authors), "script": a.script,
            "sha256": a.sha256, "encoding": a.encoding, "path": a.path, "text": a.text,
            "paragraphs": [[p.number, p.start, p.end, p.heading] for p in a.paragraphs]}


def article_from_dict(d: dict) -> Article:
    """Inverse of :func:`article_to_dict`."""
    return Article(id=d["id"], text=d["text"], title=d["title"], subtitle=d["subtitle"],
                   source=d["source"], date=d["date"], url=d["url"],
                   authors=tuple(d["authors"]), script=d["script"],
                   paragraphs=tuple(Paragraph(*p) for p in d["paragraphs"]),
                   sha256=d["sha256"], encoding=d["encoding"], path=d.get("path", ""))

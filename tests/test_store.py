"""Article and chunk files (retrieval/store.py): lazy loading, version 1 indexes, damage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval import Index, IndexCorruptError, Searcher, Settings, build_index
from retrieval.store import ArticleTable, ChunkTable

LEX = Settings(model="")


def _files(folder: Path) -> dict[str, str]:
    return json.loads((folder / "manifest.json").read_text("utf-8"))["files"]


def test_loading_parses_no_article_until_one_is_asked_for(corpus: Path, tmp_path: Path) -> None:
    built, _ = build_index(corpus, tmp_path / "idx", LEX)
    loaded = Index.load(tmp_path / "idx")
    assert isinstance(loaded.articles, ArticleTable) and isinstance(loaded.chunks, ChunkTable)
    assert not loaded.articles._cache
    assert loaded.chunks == built.chunks and list(loaded.articles) == list(built.articles)
    assert loaded.chunks[-1] == built.chunks[-1] and loaded.chunks[1:3] == built.chunks[1:3]
    with pytest.raises(IndexError):
        loaded.chunks[len(built.chunks)]
    hits = Searcher(loaded, LEX).search("单光屯社区化解了多少矛盾？")
    assert 1 <= len(loaded.articles._cache) <= 2  # only the articles of the hits
    for a in built.articles.values():
        assert loaded.articles[a.id] == a
    assert hits[0].chunk.text == loaded.articles[hits[0].chunk.article].text[
        hits[0].chunk.start:hits[0].chunk.end]


def test_a_version_1_index_still_loads(corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    built, _ = build_index(corpus, folder, LEX)
    m = json.loads((folder / "manifest.json").read_text("utf-8"))
    gen = m["generation"]
    (folder / f"chunks-{gen}.jsonl").write_text("".join(json.dumps(
        {"id": c.id, "article": c.article, "start": c.start, "end": c.end,
         "p": [c.first_paragraph, c.last_paragraph], "heading": c.heading, "text": c.text},
        ensure_ascii=False) + "\n" for c in built.chunks), "utf-8")
    for name in (f"chunks-{gen}.npy", f"chunks-{gen}.headings.json", f"articles-{gen}.index.json"):
        (folder / name).unlink()
        m["sizes"].pop(name, None)
    m["format_version"], m["files"]["chunks"] = 1, f"chunks-{gen}.jsonl"
    m.pop("checksums")  # version 1 indexes recorded none
    (folder / "manifest.json").write_text(json.dumps(m, ensure_ascii=False), "utf-8")
    old = Index.load(folder)
    assert old.chunks == built.chunks and old.articles == built.articles
    q = "哪个村种芹菜？"
    assert [h.chunk for h in Searcher(old, LEX).search(q)] == \
        [h.chunk for h in Searcher(built, LEX).search(q)]
    _, report = build_index(corpus, folder, LEX)  # unchanged articles: kept as it is
    assert report.action == "unchanged" and Index.load(folder).manifest["format_version"] == 1


def test_a_loaded_index_keeps_answering_after_a_rebuild_removed_its_files(
        corpus: Path, tmp_path: Path) -> None:
    build_index(corpus, tmp_path / "idx", LEX)
    before = Index.load(tmp_path / "idx")
    build_index(corpus, tmp_path / "idx", LEX, rebuild=True)  # a new generation; old files go
    assert not before.articles.path.exists() and not before.articles._cache
    assert Searcher(before, LEX).search("鄭永強是誰？")[0].chunk.text  # read from the open file


def test_a_damaged_article_line_is_reported_when_read(corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    built, _ = build_index(corpus, folder, LEX)
    path = folder / _files(folder)["articles"]
    raw = path.read_bytes()
    first = next(iter(built.articles))
    start = raw.index(b'"title"')
    path.write_bytes(raw[:start] + b"#" + raw[start + 1:])  # same size: passes the size check
    with pytest.raises(IndexCorruptError, match="checksum"):
        Index.load(folder)  # the checksum sees it on load...
    index = Index.load(folder, verify="none")  # ...and, unchecked (a file over 8 MiB), reading does
    with pytest.raises(IndexCorruptError, match="rebuild"):
        index.articles[first]


@pytest.mark.parametrize("damage", ["no article index", "offsets off", "chunk file not numpy",
                                    "article number out of range"])
def test_damaged_chunk_or_article_index_files_are_caught_on_load_or_read(
        corpus: Path, tmp_path: Path, damage: str) -> None:
    import numpy as np

    folder = tmp_path / "idx"
    build_index(corpus, folder, LEX)
    files = _files(folder)
    meta_path = folder / files["articles"].replace(".jsonl", ".index.json")
    chunks = folder / files["chunks"]
    m = json.loads((folder / "manifest.json").read_text("utf-8"))
    if damage == "no article index":
        meta_path.unlink()
    elif damage == "offsets off":
        meta = json.loads(meta_path.read_text("utf-8"))
        meta["offsets"][1] += 1
        meta_path.write_text(json.dumps(meta), "utf-8")
        m["sizes"].pop(meta_path.name)
    elif damage == "chunk file not numpy":
        chunks.write_bytes(b"x" * chunks.stat().st_size)
    else:
        table = np.load(chunks)
        table["article"][0] = 7
        np.save(chunks, table)
        m["sizes"].pop(chunks.name)
    (folder / "manifest.json").write_text(json.dumps(m, ensure_ascii=False), "utf-8")
    with pytest.raises(IndexCorruptError, match="rebuild"):
        index = Index.load(folder)  # shifted offsets show only when those lines are read
        assert [index.articles[a] for a in index.articles]

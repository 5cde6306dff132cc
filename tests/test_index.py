import json
import subprocess
import sys
from pathlib import Path

import pytest

from retrieval import (
    Index,
    IndexCorruptError,
    IndexMismatchError,
    ModelUnavailableError,
    Searcher,
    Settings,
    build_index,
    index_status,
)
from retrieval import index as index_mod

LEX = Settings(model="")
QUESTIONS = ["单光屯社区化解了多少矛盾？", "鄭永強是誰？", "哪个村种芹菜？"]


def _hits(index: Index) -> list[list[tuple[int, float]]]:
    s = Searcher(index, LEX)
    return [[(h.chunk.id, round(h.score, 5)) for h in s.search(q)] for q in QUESTIONS]


def test_save_load_identical_hits(corpus: Path, tmp_path: Path) -> None:
    built, report = build_index(corpus, tmp_path / "idx", LEX)
    assert (report.action, report.articles, report.retrievers) == ("built", 2, ("bm25",))
    loaded = Index.load(tmp_path / "idx")
    assert _hits(built) == _hits(loaded)
    assert loaded.chunks == built.chunks
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text("utf-8"))
    assert manifest["format_version"] == index_mod.FORMAT_VERSION
    assert set(manifest["articles"]) == {p.stem for p in corpus.glob("*.txt")}
    assert manifest["settings"]["chunk_size"] == LEX.chunk_size
    assert not list((tmp_path / "idx").rglob("*.pkl"))


def test_corrupt_manifest_is_a_clear_error_and_rebuild_fixes_it(corpus: Path,
                                                                tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    build_index(corpus, folder, LEX)
    (folder / "manifest.json").write_text("{not json", "utf-8")
    with pytest.raises(IndexCorruptError, match=r"corrupt.*newsqa index --rebuild"):
        Index.load(folder)
    assert index_status(corpus, folder, LEX)[0] == "stale"
    _, report = build_index(corpus, folder, LEX)
    assert report.action == "built"
    Index.load(folder)


def test_wrong_format_version(corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    build_index(corpus, folder, LEX)
    m = json.loads((folder / "manifest.json").read_text("utf-8"))
    m["format_version"] = 999
    (folder / "manifest.json").write_text(json.dumps(m), "utf-8")
    with pytest.raises(IndexMismatchError, match="version 999"):
        Index.load(folder)


def test_truncated_chunk_file_detected(corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    build_index(corpus, folder, LEX)
    chunks = next(folder.glob("chunks-*.npy"))
    chunks.write_bytes(chunks.read_bytes()[:100])
    with pytest.raises(IndexCorruptError, match="changed"):
        Index.load(folder)


def test_settings_or_model_change_makes_index_stale(corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    build_index(corpus, folder, LEX)
    assert index_status(corpus, folder, LEX) == ("fresh", "")
    assert index_status(corpus, folder, LEX.replace(chunk_size=120))[0] == "stale"
    assert index_status(corpus, folder, LEX.replace(model="some/model"))[0] == "stale"
    _, report = build_index(corpus, folder, LEX.replace(chunk_size=120))
    assert report.action == "built" and "settings" in report.reason


def test_added_changed_removed_articles(corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    build_index(corpus, folder, LEX)
    (corpus / "new.md").write_text("# 新文章\n\n芹菜合作社今年增收。\n", "utf-8")
    first = sorted(corpus.glob("0*.txt"))[0]
    first.write_text(first.read_text("utf-8") + "\n补充的一段话。\n", "utf-8")
    assert index_status(corpus, folder, LEX)[0] == "stale"
    _, report = build_index(corpus, folder, LEX)
    assert report.action == "updated"
    assert report.added == ("new",) and report.changed == (first.stem,)
    (corpus / "new.md").unlink()
    _, report = build_index(corpus, folder, LEX)
    assert report.removed == ("new",)
    assert index_status(corpus, folder, LEX) == ("fresh", "")


def test_crash_mid_build_keeps_previous_index(corpus: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "idx"
    built, _ = build_index(corpus, folder, LEX)
    before = _hits(built)
    (corpus / "new.md").write_text("# 新\n\n新的内容。\n", "utf-8")

    def boom(*_a: object, **_k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(index_mod, "_commit_manifest", boom)
    with pytest.raises(OSError):
        build_index(corpus, folder, LEX)
    monkeypatch.undo()
    assert _hits(Index.load(folder)) == before


def test_missing_model_falls_back_to_lexical_once(corpus: Path, tmp_path: Path) -> None:
    warnings: list[str] = []
    settings = Settings(model=str(tmp_path / "no-such-model"))
    index, report = build_index(corpus, tmp_path / "idx", settings, warn=warnings.append)
    assert report.retrievers == ("bm25",) and index.manifest["retrievers"] == ["bm25"]
    assert len(warnings) == 1 and "lexical" in warnings[0] and "newsqa index" in warnings[0]
    assert Searcher(index, settings).search("鄭永強是誰？")[0].chunk.article.startswith("004")
    with pytest.raises(ModelUnavailableError):
        build_index(corpus, tmp_path / "idx2", settings.replace(require_dense=True))


def test_hub_model_offline_fails_fast(corpus: Path, tmp_path: Path) -> None:
    import time

    t0 = time.perf_counter()
    warnings: list[str] = []
    _, report = build_index(corpus, tmp_path / "idx",
                            Settings(model="example-org/not-cached-model"), warn=warnings.append)
    assert time.perf_counter() - t0 < 20
    assert report.retrievers == ("bm25",) and "not-cached-model" in warnings[0]


def test_lexical_answering_does_not_import_torch_or_bm25s(lexical_index: Index) -> None:
    code = (
        "import sys\n"
        "from retrieval import Index, Searcher, Settings, compose\n"
        f"idx = Index.load({str(lexical_index.folder)!r})\n"
        "a = compose('鄭永強是誰？', Searcher(idx, Settings(model='')).search('鄭永強是誰？'), idx)\n"
        "assert a.answered\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'faiss', 'bm25s', 'scipy')\n"
        "             if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

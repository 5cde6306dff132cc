"""What broke when newsqa was tried as a hostile tester would: each case fails without its fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retrieval import Index, IndexCorruptError, Settings, build_index, load_corpus

from .conftest import ROOT, SEEDS

ENV = {**os.environ, "NEWSQA_MODEL": "", "PYTHONIOENCODING": "utf-8", "PYTHONPATH": str(ROOT)}


def newsqa(args: list[str], cwd: Path, stdin: bytes = b"", env: dict | None = None
           ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], input=stdin,
                          capture_output=True, cwd=cwd, timeout=120, env={**ENV, **(env or {})})


# --- questions: any bytes in, a clear answer or message out ----------------------------------

def test_a_bad_line_gets_a_message_and_the_batch_goes_on(tmp_path: Path) -> None:
    lines = (b"abc\xff\n\xef\xbb\xbf" + "单光屯社区化解了多少矛盾？\r\n".encode()
             + "长".encode() * 100_000 + b"\n")
    for env in ({}, {"LC_ALL": "C"}):
        out = newsqa(["ask", "--corpus", str(SEEDS), "--index", str(tmp_path / "i"), "--json"],
                     tmp_path, lines, env)
        rows = [json.loads(x) for x in out.stdout.decode().splitlines()]
        assert out.returncode == 2 and "Traceback" not in out.stderr.decode()
        assert "not valid text" in rows[0]["error"]
        assert rows[1]["question"] == "单光屯社区化解了多少矛盾？" and rows[1]["answer_span"] == "52件"
        assert "error" in rows[2] and len(rows[2]["question"]) < 300  # the echo is cut short
    arg = newsqa(["ask", "--corpus", str(SEEDS), "--index", str(tmp_path / "i"), "abc\udcff"],
                 tmp_path)
    assert arg.returncode == 2 and arg.stderr.decode().count("\n") == 1


def test_nothing_retrieved_leaves_no_empty_heading(tmp_path: Path) -> None:
    out = newsqa(["ask", "--corpus", str(SEEDS), "--index", str(tmp_path / "i"), "hello"], tmp_path)
    assert out.stdout.decode().strip() == "The articles do not answer this question."


# --- the corpus: every file accounted for, nothing read from outside it ---------------------------

def test_corpus_files_are_accounted_for(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    (corpus / "2024-05").mkdir(parents=True)
    (corpus / "a.txt").write_text((SEEDS / "000_c12282a6cabd5aaa.txt").read_text("utf-8"), "utf-8")
    (corpus / "a.md").write_text("# 同名\n\n另一篇文章。\n", "utf-8")
    (corpus / "passwd.txt").symlink_to("/etc/passwd")
    (corpus / "2024-05" / "one.txt").write_text("只有一行的文章，讲的是芹菜村。", "utf-8")
    (corpus / "front.md").write_text("---\ntitle: x\n---\n", "utf-8")
    (corpus / "open.md").write_text("---\n没有结束的前言\n正文说的是高岭村。\n", "utf-8")
    (corpus / "u16.txt").write_bytes("標題\n這是一篇UTF-16的文章，講茶棚村。".encode("utf-16"))
    warnings: list[str] = []
    articles = {a.id: a for a in load_corpus(corpus, warnings.append)}
    assert set(articles) == {"a", "2024-05/one", "open", "u16"}
    assert articles["a"].path.endswith("a.md")  # sorted first; a.txt is named in the warning
    text = "\n".join(warnings)
    assert "a.txt" in text and "a.md" in text and "passwd.txt" in text and "outside" in text
    assert "front.md" in text and "never closed" in text
    index, _report = build_index(corpus, tmp_path / "idx", Settings(model=""))
    assert all(any(c.article == a for c in index.chunks) for a in articles)  # all searchable
    assert not any("root:" in index.passage(c) for c in index.chunks)


def test_corpus_paths_give_one_line_errors_and_an_index_still_answers(tmp_path: Path) -> None:
    index_dir = str(tmp_path / "i")
    assert newsqa(["index", "--corpus", str(SEEDS), "--index", index_dir], tmp_path).returncode == 0
    as_file = newsqa(["ask", "--corpus", str(SEEDS / "000_c12282a6cabd5aaa.txt"), "x"], tmp_path)
    assert as_file.returncode == 3 and b"is not a folder" in as_file.stderr
    gone = newsqa(["ask", "--corpus", str(tmp_path / "gone"), "--index", index_dir, "鄭永強是誰？"],
                  tmp_path)
    assert gone.returncode == 0 and "鄭永強" in gone.stdout.decode()
    assert b"answering from the index built earlier" in gone.stderr
    (tmp_path / "empty").mkdir()
    empty = newsqa(["ask", "--corpus", str(tmp_path / "empty"), "x"], tmp_path)
    assert empty.returncode == 3 and not (tmp_path / ".newsqa").exists()


# --- the index repairs itself ----------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["empty bm25", "garbage articles", "changed article index",
                                    "tokenizer mode"])
def test_a_damaged_index_is_rebuilt_by_ask(tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "i"
    build_index(SEEDS, folder, Settings(model=""))
    if damage == "empty bm25":
        next(folder.glob("bm25-*/data.csc.index.npy")).write_bytes(b"")
    elif damage == "garbage articles":
        with open(next(folder.glob("articles-*.jsonl")), "a") as fh:
            fh.write("garbage\n")
    elif damage == "changed article index":
        path = next(folder.glob("articles-*.index.json"))
        raw = bytearray(path.read_bytes())
        raw[5] = ord("9") if raw[5] != ord("9") else ord("8")
        path.write_bytes(bytes(raw))
    else:
        path = next(folder.glob("bm25-*/tokenizer.json"))
        path.write_text(json.dumps({"mode": "whitespace"}), "utf-8")
    with pytest.raises(IndexCorruptError):
        Index.load(folder)
    out = newsqa(["ask", "--corpus", str(SEEDS), "--index", str(folder), "鄭永強是誰？"], tmp_path)
    err = out.stderr.decode()
    assert out.returncode == 0 and "鄭永強" in out.stdout.decode() and "Traceback" not in err
    assert "updating the index" in err and "--rebuild" not in err  # it says what it does
    Index.load(folder, verify="all")


def test_a_flipped_byte_in_a_large_file_is_caught_by_verify(tmp_path: Path, tiny_model: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from retrieval import index as index_module

    folder = tmp_path / "i"
    build_index(SEEDS, folder, Settings(model=str(tiny_model)))
    faiss_file = next(folder.glob("dense-*.faiss"))
    raw = bytearray(faiss_file.read_bytes())
    raw[-7] ^= 0x40
    faiss_file.write_bytes(bytes(raw))
    monkeypatch.setattr(index_module, "CHEAP_BYTES", 1024)  # as if it were a large index
    Index.load(folder)  # not checked on every load: loading stays fast...
    with pytest.raises(IndexCorruptError, match="checksum"):
        Index.load(folder, verify="all")  # ...but `newsqa index --verify` and every rebuild see it
    _index, report = build_index(SEEDS, folder, Settings(model=str(tiny_model)))
    assert report.action == "built" and "checksum" in report.reason


def test_a_missing_onnx_encoder_is_repaired_by_index(tmp_path: Path, tiny_model: Path) -> None:
    folder = tmp_path / "i"
    index, _ = build_index(SEEDS, folder, Settings(model=str(tiny_model)))
    (folder / index.manifest["query_encoder"]["onnx"]).unlink()
    index, report = build_index(SEEDS, folder, Settings(model=str(tiny_model)))
    assert report.action == "built" and (folder / index.manifest["query_encoder"]["onnx"]).is_file()


def test_lexical_and_dense_defaults_keep_separate_indexes(tmp_path: Path) -> None:
    from bot.cli import default_index_dir

    assert default_index_dir("seeds", Settings(model="")) != default_index_dir("seeds", Settings())


# --- one-line errors everywhere ----------------------------------------------------------------------

def test_eval_and_paths_fail_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n', "utf-8")
    cases = {("eval", "--questions", "/nonexistent"): 2, ("eval", "--questions", "bad.jsonl"): 2,
             ("eval", "--cmrc", str(tmp_path)): 2, ("ask", "--index", "/etc/passwd", "x"): 2,
             ("ask", "--index", "/proc/foo", "x"): 2, ("ask", "--top-k", "0", "x"): 2}
    for args, code in cases.items():
        out = newsqa(list(args), tmp_path)
        err = out.stderr.decode()
        assert out.returncode == code and err.count("\n") == 1 and "Traceback" not in err, args
    assert b"--top-k must be" in newsqa(["ask", "--top-k", "0", "x"], tmp_path).stderr
    # The default gold set ships with newsqa: eval works from any folder.
    out = newsqa(["eval", "--corpus", str(SEEDS), "--index", str(tmp_path / "i"), "--limit", "2"],
                 tmp_path)
    assert out.returncode == 0 and b"overall" in out.stdout
    src = newsqa(["sources", "--corpus", str(SEEDS), "--index", str(tmp_path / "i"), "--json"], tmp_path)
    row = json.loads(src.stdout.decode().splitlines()[0])
    assert row["retrievers"] == ["bm25"] and row["file"].endswith(".txt")

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main

ENV = {**os.environ, "NEWSQA_MODEL": "", "PYTHONIOENCODING": "utf-8"}


def run(args: list[str], tmp_path: Path, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], input=stdin,
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**ENV, "PYTHONPATH": str(Path(__file__).parent.parent)})


@pytest.fixture
def cli(corpus: Path, tmp_path: Path):
    def call(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return run([*args[:1], "--corpus", str(corpus), "--index", str(tmp_path / "idx"),
                    *args[1:]], tmp_path, stdin)
    return call


def test_ask_builds_index_then_answers(cli) -> None:
    first = cli("ask", "单光屯社区化解了多少矛盾？")
    assert first.returncode == 0, first.stderr
    assert "building the index" in first.stderr and "52件" in first.stdout
    assert "以高质量党建引领高质量发展 — 聊城日报, 2024-05-21, ¶ 5" in first.stdout
    second = cli("ask", "鄭永強是誰？")
    assert second.returncode == 0 and "building" not in second.stderr
    assert "天津市城管委廢管處副處長" in second.stdout and "來源" in second.stdout


def test_ask_json_schema(cli) -> None:
    out = cli("ask", "--json", "請問茶棚村常住人口有多少？")
    data = json.loads(out.stdout)
    assert list(data) == ["question", "answered", "answer", "answer_span", "script", "citations",
                          "passages", "interpreted", "choices"]
    assert data["answered"] is True and data["script"] == "hant"
    assert data["answer_span"] == "400多人"
    c = next(c for c in data["citations"] if c["span"])  # only the answer is marked
    assert list(c) == ["n", "article", "title", "source", "date", "paragraph", "quote", "span"]
    assert c["quote"][c["span"][0]:c["span"][1]] == "400多人"
    assert sum(1 for c in data["citations"] if c["span"]) == 1
    assert [p["rank"] for p in data["passages"]] == list(range(1, len(data["passages"]) + 1))
    assert set(data["passages"][0]) == {"rank", "article", "chunk", "score", "text"}


def test_stdin_batch_with_errors_continues(cli) -> None:
    out = cli("ask", "--json", stdin="哪个村种芹菜？\n\n比特币今天的价格是多少？\n🙂🙂\n" + "长" * 1001 + "\n")
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 5 and out.returncode == 2
    assert rows[0]["answered"] and "高岭村" in rows[0]["answer"]
    assert "empty" in rows[1]["error"]
    assert rows[2]["answered"] is False and rows[2]["citations"] == []
    assert "no words" in rows[3]["error"] and "limit is 1000" in rows[4]["error"]


def test_bad_questions_exit_2(cli) -> None:
    for q in ("   ", "！？。", "长" * 1001):
        out = cli("ask", q)
        assert out.returncode == 2 and out.stderr.startswith("newsqa:") and not out.stdout


def test_mixed_chinese_and_english(cli) -> None:
    out = cli("ask", "天津同仁堂 last year 實現產值多少？")
    assert out.returncode == 0 and "9.54億元" in out.stdout


def test_sources_and_index_commands(cli) -> None:
    out = cli("index")
    assert out.returncode == 0 and "2 articles" in out.stdout and "retrievers bm25" in out.stdout
    out = cli("sources")
    assert "以高质量党建引领高质量发展 — 聊城日报, 2024-05-21" in out.stdout
    assert "天津扎實推進黨建引領基層治理行動 — 人民日報, 2023-08-30" in out.stdout


def test_chat_through_stdin(cli) -> None:
    out = cli("chat", stdin="/help\n鄭永強是誰？\n/source 1\n/source 9\n/sources\n/nope\n/quit\n")
    assert out.returncode == 0
    assert "/source N" in out.stdout and "天津市城管委廢管處副處長" in out.stdout
    assert "駐村工作隊隊長" in out.stdout and "usage: /source N" in out.stdout
    assert "unknown command /nope" in out.stdout


def test_corrupt_index_message_and_exit_code(cli, tmp_path: Path) -> None:
    assert cli("index").returncode == 0
    (tmp_path / "idx" / next(p.name for p in (tmp_path / "idx").glob("chunks-*"))).unlink()
    out = cli("ask", "鄭永強是誰？")  # stale → rebuilt automatically
    assert out.returncode == 0 and "updating the index" in out.stderr
    assert "天津市" in out.stdout


def test_missing_corpus_is_one_line(tmp_path: Path) -> None:
    out = run(["ask", "--corpus", str(tmp_path / "none"), "问题"], tmp_path)
    assert out.returncode == 3 and out.stderr.count("\n") == 1 and "does not exist" in out.stderr


def test_main_in_process(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("鄭永強是誰？\n"))
    code = main(["ask", "--model", "", "--corpus", str(corpus), "--index", str(tmp_path / "i")])
    assert code == 0 and "鄭永強" in capsys.readouterr().out

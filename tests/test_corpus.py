from pathlib import Path

import pytest

from retrieval import CorpusError, load_corpus, parse_article, read_article
from retrieval.corpus import decode
from tests.conftest import SIMP, TRAD


def test_simplified_seed_metadata(seeds_dir: Path) -> None:
    a = read_article(seeds_dir / f"{SIMP}.txt")
    assert a.title == "以高质量党建引领高质量发展"
    assert a.subtitle == "全市基层党建工作现场观摩暨重点任务推进会议侧记"
    assert (a.source, a.date, a.authors, a.script) == ("聊城日报", "2024-05-21", ("林金彦",), "hans")
    assert len(a.paragraphs) == 22
    assert a.paragraph_text(a.paragraphs[0]) == "高质量党建是高质量发展的坚强组织保障。"
    assert a.paragraphs[-1].heading == "坚持党建引领"
    assert [p.heading for p in a.paragraphs[:4]] == [None, None, None, "强化队伍建设"]
    body = "".join(a.paragraph_text(p) for p in a.paragraphs)
    for chrome in ("上一篇", "放大+", "content_50650", "enpproperty", "牛鼻子"):
        assert chrome not in body


def test_traditional_seed_metadata(seeds_dir: Path) -> None:
    a = read_article(seeds_dir / f"{TRAD}.txt")
    assert a.title == "天津扎實推進黨建引領基層治理行動"
    assert a.subtitle == "激勵擔當作為 凝聚發展合力"
    assert (a.source, a.date, a.script) == ("人民日報", "2023-08-30", "hant")
    assert a.authors == ("陳偉光", "武少民", "龔相娟")
    assert len(a.paragraphs) == 28
    assert {p.heading for p in a.paragraphs} == {None, "強隊伍——", "聚人心——", "助發展——"}
    assert a.paragraph_text(a.paragraphs[-1]).endswith("提供堅強保証。")
    body = "\n".join(a.paragraph_text(p) for p in a.paragraphs)
    for chrome in ("人民網>>", "小字號", "原標題", "責編", "分享讓更多人看到", "返回頂部", "第 13 版"):
        assert chrome not in body


def test_paragraph_offsets_point_into_original(seeds_dir: Path) -> None:
    for a in load_corpus(seeds_dir):
        for p in a.paragraphs:
            text = a.text[p.start:p.end]
            assert text == text.strip() and text


def test_front_matter_overrides_extraction() -> None:
    text = "---\ntitle: 茶棚村的变化\nsource: 人民日报\ndate: 2023/8/30\nauthor: 甲 乙\n---\n上一篇\n正文第一段。\n"
    a = parse_article("x", text)
    assert (a.title, a.source, a.date, a.authors) == ("茶棚村的变化", "人民日报", "2023-08-30",
                                                      ("甲", "乙"))
    assert [a.paragraph_text(p) for p in a.paragraphs] == ["正文第一段。"]


def test_gb18030_and_big5_files_decode_with_warning(tmp_path: Path) -> None:
    (tmp_path / "gb.txt").write_bytes("标题\n单光屯社区化解矛盾52件。\n".encode("gb18030"))
    (tmp_path / "big5.txt").write_bytes("標題\n鄭永強來到茶棚村擔任隊長。\n".encode("big5"))
    warnings: list[str] = []
    arts = {a.id: a for a in load_corpus(tmp_path, warnings.append)}
    assert arts["gb"].encoding == "gb18030" and "矛盾52件" in arts["gb"].text
    assert arts["big5"].script == "hant" and "茶棚村" in arts["big5"].text
    assert len(warnings) == 2 and all("not UTF-8" in w for w in warnings)


def test_empty_binary_and_undecodable_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "ok.md").write_text("# 标题\n\n内容一句。\n", "utf-8")
    (tmp_path / "empty.txt").write_bytes(b"  \n")
    (tmp_path / "bin.txt").write_bytes(b"\x89PNG\x00\x00\x01\x02" * 10)
    (tmp_path / "notes.json").write_text("{}", "utf-8")
    warnings: list[str] = []
    arts = load_corpus(tmp_path, warnings.append)
    assert [a.id for a in arts] == ["ok"]
    assert arts[0].title == "标题"
    assert sorted(w.split(":")[0] for w in warnings) == ["skipped bin.txt", "skipped empty.txt"]


def test_decode_rejects_garbage() -> None:
    with pytest.raises(CorpusError):
        decode(bytes(range(1, 32)) * 50)


def test_missing_or_empty_corpus(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus(tmp_path / "nope")
    with pytest.raises(CorpusError, match="no readable"):
        load_corpus(tmp_path)

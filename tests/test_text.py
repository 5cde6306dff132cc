from retrieval.text import detect_script, split_sentences, to_simplified, to_traditional


def test_detect_script() -> None:
    assert detect_script("鄭永強是誰？") == "hant"
    assert detect_script("单光屯社区化解了多少矛盾？") == "hans"
    assert detect_script("哪个村种芹菜？") == "hans"
    # 里 is also Traditional (公里, 鄰里): only 區 tells, and it says Traditional
    assert detect_script("幸福里社區化解了多少矛盾？") == "hant"
    assert detect_script("港云里社区在哪里？") == "hans"
    assert detect_script("What is this?") == "hans"
    assert detect_script("茶棚村") == "hans"  # no script-specific character: Simplified


def test_conversion_both_ways() -> None:
    assert to_simplified("鄭永強來到茶棚村擔任駐村工作隊隊長") == "郑永强来到茶棚村担任驻村工作队队长"
    assert to_traditional("为村集体收入增收5万余元") == "為村集體收入增收5萬餘元"
    assert to_simplified("") == ""


def test_sentences_keep_closing_quotes_and_brackets() -> None:
    text = "“我跟您道個歉。”年輕人的態度軟了下來。他說：「好！」（完）然後走了﹔再見?ok"
    got = [text[a:b] for a, b in split_sentences(text)]
    assert got == ["“我跟您道個歉。”", "年輕人的態度軟了下來。", "他說：「好！」",
                   "（完）然後走了﹔", "再見?", "ok"]


def test_sentences_split_on_all_terminals_and_offsets() -> None:
    text = "  甲。乙！丙？丁；戊!己?」』庚\n辛。。”"
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == ["甲。", "乙！", "丙？", "丁；", "戊!", "己?」』", "庚",
                                             "辛。。”"]
    assert split_sentences(text, 2, 4) == [(2, 4)]

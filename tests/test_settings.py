import pytest

from retrieval import ConfigError, Settings


@pytest.mark.parametrize(("change", "message"), [
    ({"tokenizer": "words"}, r"tokenizer must be one of bigram, unibigram, jieba, jieba\+bigram"),
    ({"fusion": "weighted"}, "fusion must be one of convex, rrf"),
    ({"dense_weight": 1.5}, r"dense_weight must be in \[0, 1\]"),
    ({"rerank": 4}, "rerank"),
    ({"chunk_size": 5}, "chunk_size"),
    ({"top_k": 0}, "top_k"),
])
def test_bad_settings_are_refused_naming_what_is_allowed(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings(**change)


def test_defaults_are_valid_and_replace_validates() -> None:
    s = Settings()
    assert (s.fusion, s.dense_weight, s.rerank) == ("convex", 0.3, 4000)
    with pytest.raises(ConfigError):
        s.replace(rerank=1)

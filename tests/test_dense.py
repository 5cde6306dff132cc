"""The dense path, with a tiny randomly initialised model built by the test and loaded by path."""

import os
from pathlib import Path

import numpy as np
import pytest

from retrieval import Embedder, Index, IndexCorruptError, Searcher, Settings, build_index, vectors
from retrieval.vectors import VectorIndex
from tests.conftest import ROOT


def test_tiny_model_dense_index_roundtrip(corpus: Path, tmp_path: Path, tiny_model: Path) -> None:
    settings = Settings(model=str(tiny_model))
    index, report = build_index(corpus, tmp_path / "idx", settings)
    assert report.retrievers == ("bm25", "dense")
    assert report.dimension == 32 and report.embedded == report.chunks
    assert index.manifest["model"]["name"] == str(tiny_model)
    assert index.manifest["faiss"] == {"kind": "flat", "size": report.chunks, "shards": 0}
    loaded = Index.load(tmp_path / "idx")
    assert loaded.vectors is not None and loaded.vectors.size == report.chunks
    s1, s2 = Searcher(index, settings), Searcher(loaded, settings)
    for q in ("单光屯社区化解了多少矛盾？", "鄭永強是誰？"):
        h1, h2 = s1.search(q), s2.search(q)
        assert [(h.chunk.id, round(h.score, 6)) for h in h1] == \
               [(h.chunk.id, round(h.score, 6)) for h in h2]
        assert any(h.dense is not None for h in h1)


def test_update_embeds_only_changed_passages(corpus: Path, tmp_path: Path,
                                             tiny_model: Path) -> None:
    settings = Settings(model=str(tiny_model))
    _, first = build_index(corpus, tmp_path / "idx", settings)
    (corpus / "new.md").write_text("# 新文章\n\n芹菜合作社今年增收。\n", "utf-8")
    index, second = build_index(corpus, tmp_path / "idx", settings)
    assert second.action == "updated" and second.added == ("new",)
    assert second.embedded == 1 and second.chunks == first.chunks + 1
    # Carried-over vectors equal freshly computed ones (the ONNX export embeds passages when
    # its vectors pass the check: cosine >= 0.999 against sentence-transformers).
    fresh = Embedder(str(tiny_model)).embed_passages([index.passage(index.chunks[0])])
    # (which embeds passages, the export or torch, is whichever was faster on this machine)
    assert index.manifest["model"]["passages_by"] in ("onnx", "sentence-transformers")
    assert float(index.vectors.vectors()[0] @ fresh[0]) >= 0.999
    _, third = build_index(corpus, tmp_path / "idx", settings)
    assert third.action == "unchanged" and third.embedded == 0


def test_query_model_missing_at_query_time_falls_back(corpus: Path, tmp_path: Path,
                                                      tiny_model: Path) -> None:
    import shutil

    model = tmp_path / "model-copy"
    shutil.copytree(tiny_model, model)
    settings = Settings(model=str(model), onnx_query=False)
    _index, _ = build_index(corpus, tmp_path / "idx", settings)
    shutil.rmtree(model)
    warnings: list[str] = []
    s = Searcher(Index.load(tmp_path / "idx"), settings, warn=warnings.append)
    hits = s.search("鄭永強是誰？")
    hits += s.search("茶棚村有多少人？")
    assert hits and all(h.dense is None for h in hits)
    assert len(warnings) == 1 and "lexical" in warnings[0]
    assert s.retrievers == ("bm25",)


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


@pytest.mark.parametrize("shard_from", [10**9, 2000])  # one PQ shard, two searched in parallel
def test_pq_recall_against_flat(monkeypatch: pytest.MonkeyPatch, shard_from: int) -> None:
    """Random vectors are the hard case for any ANN index (all neighbours but the first
    are near-ties); the PQ scan with exact re-rank must still find what flat finds."""
    monkeypatch.setattr(vectors, "PQ_SHARD_FROM", shard_from)
    rng = np.random.default_rng(0)
    vecs = _unit(rng, 4000, 64)
    queries = vecs[rng.choice(4000, 100, replace=False)] + 0.3 * _unit(rng, 100, 64)
    flat = VectorIndex.build(vecs, ann_threshold=10**6)
    pq = VectorIndex.build(vecs, ann_threshold=1000)
    assert (flat.kind, pq.kind, pq.shards) == ("flat", "pq", 1 if shard_from > 4000 else 2)
    _, exact = flat.search(queries, 10)
    scores, approx = pq.search(queries, 10, rerank=400)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.95
    # Re-ranked scores are exact cosines, not PQ estimates.
    np.testing.assert_allclose(scores[0], vecs[approx[0]] @ queries[0].astype(np.float32),
                               rtol=1e-5)
    _, few = pq.search(queries, 10, rerank=50)  # a smaller re-rank finds less, not nothing
    assert 0.3 < np.mean([len(set(a) & set(e)) / 10 for a, e in zip(few, exact, strict=True)]) \
        < recall


def test_pq_shards_save_and_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(vectors, "PQ_SHARD_FROM", 2000)
    rng = np.random.default_rng(1)
    vecs, queries = _unit(rng, 3000, 32), _unit(rng, 5, 32)
    built = VectorIndex.build(vecs, ann_threshold=1000)
    shard_files = built.save(tmp_path / "dense-x.faiss")
    assert [p.name for p in shard_files] == ["dense-x.pq0.faiss", "dense-x.pq1.faiss"]
    loaded = VectorIndex.load(tmp_path / "dense-x.faiss", shard_files)
    assert (loaded.kind, loaded.shards, loaded.size) == ("pq", 2, 3000)
    np.testing.assert_array_equal(loaded.search(queries, 10)[1], built.search(queries, 10)[1])
    np.testing.assert_allclose(loaded.vectors(), vecs)
    # The bot searches from several worker threads at once; the shards' own threads serve all.
    from concurrent.futures import ThreadPoolExecutor

    many = _unit(rng, 64, 32)
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda q: loaded.search(q[None], 10)[1][0], many))
    np.testing.assert_array_equal(np.array(together), loaded.search(many, 10)[1])
    with pytest.raises(IndexCorruptError, match="do not match"):
        VectorIndex.load(tmp_path / "dense-x.faiss", shard_files[:1])
    shard_files[1].write_bytes(b"not faiss")
    with pytest.raises(IndexCorruptError, match="unreadable"):
        VectorIndex.load(tmp_path / "dense-x.faiss", shard_files)


def test_hnsw_index_from_an_older_version_still_searches(tmp_path: Path) -> None:
    import faiss

    vecs = _unit(np.random.default_rng(2), 500, 16)
    hnsw = faiss.IndexHNSWFlat(16, 16, faiss.METRIC_INNER_PRODUCT)
    hnsw.add(vecs)
    faiss.write_index(hnsw, str(tmp_path / "dense-old.faiss"))
    old = VectorIndex.load(tmp_path / "dense-old.faiss")
    assert old.kind == "hnsw" and old.search(vecs[:1], 3)[1][0][0] == 0


def test_pq_index_through_build_and_search(monkeypatch: pytest.MonkeyPatch, corpus: Path,
                                           tmp_path: Path, tiny_model: Path) -> None:
    monkeypatch.setattr(vectors, "PQ_MIN_ROWS", 16)  # the seeds have 42 chunks
    monkeypatch.setattr(vectors, "PQ_SHARD_FROM", 20)
    settings = Settings(model=str(tiny_model), ann_threshold=1)
    index, report = build_index(corpus, tmp_path / "idx", settings)
    assert index.manifest["faiss"] == {"kind": "pq", "size": report.chunks, "shards": 2}
    files = index.manifest["files"]
    assert {files["faiss_pq0"], files["faiss_pq1"]} <= {p.name for p in (tmp_path / "idx").iterdir()}
    loaded = Index.load(tmp_path / "idx")
    assert (loaded.vectors.kind, loaded.vectors.shards) == ("pq", 2)
    flat = Searcher(build_index(corpus, tmp_path / "flat", Settings(model=str(tiny_model)))[0],
                    settings)
    for q in ("单光屯社区化解了多少矛盾？", "鄭永強是誰？"):
        assert [h.chunk.id for h in Searcher(loaded, settings).search(q)] == \
               [h.chunk.id for h in flat.search(q)]  # 42 vectors: the re-rank covers all
    (tmp_path / "idx" / files["faiss_pq1"]).unlink()
    with pytest.raises(IndexCorruptError, match="missing"):
        Index.load(tmp_path / "idx")


def test_prompts_for_known_models() -> None:
    assert Embedder("BAAI/bge-small-zh-v1.5").query_prompt.startswith("为这个句子")
    e5 = Embedder("intfloat/multilingual-e5-small")
    assert (e5.query_prompt, e5.passage_prompt) == ("query: ", "passage: ")
    assert Embedder("x/y", query_prompt="q: ").query_prompt == "q: "


@pytest.mark.parametrize("fusion", ["convex", "rrf"])
def test_fusion_modes(corpus: Path, tmp_path: Path, tiny_model: Path, fusion: str) -> None:
    settings = Settings(model=str(tiny_model), fusion=fusion)
    index, _ = build_index(corpus, tmp_path / "idx", settings)
    hits = Searcher(index, settings).search("单光屯社区化解了多少矛盾？")
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert hits[0].chunk.article.startswith("000")


@pytest.mark.parametrize("ann_threshold", [1, 50_000])  # PQ + re-rank, and flat
def test_convex_fusion_keeps_confident_bm25_hits_against_a_random_model(
        monkeypatch: pytest.MonkeyPatch, corpus: Path, tmp_path: Path, tiny_model: Path,
        ann_threshold: int) -> None:
    """The tiny model has random weights: its ranking is noise. With convex fusion it may
    only decide near-ties; a clear BM25 winner keeps first place (RRF let noise win:
    see README, "Hybrid fusion")."""
    from retrieval.evaluate import load_gold

    monkeypatch.setattr(vectors, "PQ_MIN_ROWS", 16)
    settings = Settings(model=str(tiny_model), ann_threshold=ann_threshold)
    index, _ = build_index(corpus, tmp_path / "idx", settings)
    assert index.vectors.kind == ("pq" if ann_threshold == 1 else "flat")
    hybrid, lexical = Searcher(index, settings), Searcher(index, Settings(model=""))
    lexical._dense_ok = False
    gold = [g for g in load_gold(ROOT / "retrieval" / "gold" / "seeds.jsonl")
            if g.article and g.kind != "english"]  # English has no words to share with BM25
    agree = 0
    for g in gold:
        h, lx = hybrid.search(g.question), lexical.search(g.question)
        agree += h[0].chunk.article == lx[0].chunk.article
        if lx[1].lexical <= 0.55 * lx[0].lexical:  # 0.3 of scaled cosine cannot close the gap
            assert h[0].chunk.id == lx[0].chunk.id, g.question
        assert any(x.dense is not None for x in h)
    assert agree >= 0.9 * len(gold)


def test_dense_alone_ranks_when_no_word_matches(corpus: Path, tmp_path: Path,
                                                tiny_model: Path) -> None:
    settings = Settings(model=str(tiny_model))
    index, _ = build_index(corpus, tmp_path / "idx", settings)
    hits = Searcher(index, settings).search("qqqq zzzz")
    assert hits and all(h.lexical == 0 for h in hits)
    assert [h.dense for h in hits] == sorted((h.dense for h in hits), reverse=True)


def test_missing_faiss_file_is_reported_and_rebuilt(corpus: Path, tmp_path: Path,
                                                    tiny_model: Path) -> None:
    from retrieval import IndexCorruptError, index_status

    settings = Settings(model=str(tiny_model))
    build_index(corpus, tmp_path / "idx", settings)
    next((tmp_path / "idx").glob("dense-*.faiss")).unlink()
    with pytest.raises(IndexCorruptError, match="missing"):
        Index.load(tmp_path / "idx")
    assert index_status(corpus, tmp_path / "idx", settings)[0] == "fresh"  # manifest is intact
    _, report = build_index(corpus, tmp_path / "idx", settings)
    assert report.action == "built" and "missing" in report.reason
    assert Index.load(tmp_path / "idx").vectors.size == report.chunks


def test_onnx_query_encoder_matches_and_needs_no_torch(corpus: Path, tmp_path: Path,
                                                       tiny_model: Path) -> None:
    import logging
    import subprocess
    import sys

    import onnx

    from retrieval.onnx_query import OnnxQueryEncoder

    handlers = logging.getLogger().handlers[:]
    index, _ = build_index(corpus, tmp_path / "idx", Settings(model=str(tiny_model)))
    assert logging.getLogger().handlers == handlers  # the quantizer's basicConfig is undone
    info = index.manifest["query_encoder"]
    assert info and info["pooling"] == "mean" and info["cosine_min"] >= 0.9999
    assert info["graph"] == "full"  # mean pooling needs every position
    assert info["checked"] > 40  # sample questions and the corpus's own sentences
    ops = {n.op_type for n in onnx.load(str(index.folder / info["onnx"])).graph.node}
    # The fastest passing variant is kept (or a smaller one within 15%): timing decides here.
    assert info["quant"] in ("dynamic", "blocks", "none") and info["int8"] == (info["quant"] != "none")
    if info["int8"]:
        assert {"dynamic": "MatMulInteger", "blocks": "MatMulNBits"}[info["quant"]] in ops
    assert info["ms_per_question"] > 0
    questions = ["单光屯社区化解了多少矛盾？", "郑永强是谁", "芹菜", "A mixed 问题 2023"]
    ours = OnnxQueryEncoder(index.folder, info).embed_queries(questions)
    reference = Embedder(str(tiny_model)).embed_queries(questions)
    assert np.min(np.sum(ours * reference, axis=1)) >= 0.9999
    code = ("import sys; from retrieval import Index, Searcher, Settings; "
            "s = Searcher(Index.load(sys.argv[1]), Settings()); h = s.search('单光屯社区化解了多少矛盾？'); "
            "print(s.retrievers, h[0].dense is not None, 'torch' in sys.modules, "
            "'sentence_transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "idx")], capture_output=True,
                         text=True, cwd=Path(__file__).parent.parent, timeout=120)
    assert out.stdout.strip() == "('bm25', 'dense') True False False", out.stderr[-2000:]


def test_cls_models_export_a_last_layer_for_cls_only(corpus: Path, tmp_path: Path,
                                                      tiny_cls_model: Path) -> None:
    import onnx

    from retrieval.onnx_query import OnnxQueryEncoder

    index, _ = build_index(corpus, tmp_path / "idx", Settings(model=str(tiny_cls_model)))
    info = index.manifest["query_encoder"]
    assert info["pooling"] == "cls" and info["graph"] == "cls"
    ops = {n.op_type for n in onnx.load(str(index.folder / info["onnx"])).graph.node}
    # The fastest passing variant is kept; a fused one has onnxruntime's Attention op.
    assert ("Attention" in ops or "QAttention" in ops) == bool(info["fused"])
    questions = ["单光屯社区化解了多少矛盾？", "芹菜", "A mixed 问题 2023 with a longer tail of words"]
    encoder = OnnxQueryEncoder(index.folder, info)
    ids = np.array([encoder._tok.encode(questions[0]).ids], dtype=np.int64)
    hidden = encoder._session.run(None, {"embeds": encoder._table.rows(ids),
                                         "attention_mask": np.ones_like(ids),
                                         "token_type_ids": np.zeros_like(ids)})[0]
    assert ids.shape[1] > 10 and hidden.shape[:2] == (1, 1)  # one position leaves the model
    options = encoder._session.get_session_options()
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"
    layout = encoder._layout  # one thread per core, the asking thread held on the first
    assert options.intra_op_num_threads == layout.threads
    if layout.affinities:
        assert options.get_session_config_entry("session.intra_op_thread_affinities") == \
            layout.affinities
        before = os.sched_getaffinity(0)
        encoder.embed_queries(["芹菜"])
        assert os.sched_getaffinity(0) == before  # given back after the question
    reference = Embedder(str(tiny_cls_model)).embed_queries(questions)
    batch = encoder.embed_queries(questions)  # padded: the mask must hide the padding
    single = np.vstack([encoder.embed_queries([q]) for q in questions])
    assert np.min(np.sum(batch * reference, axis=1)) >= 0.9999
    assert np.min(np.sum(single * reference, axis=1)) >= 0.9999


def test_a_cls_graph_that_differs_falls_back_to_the_full_one(
        corpus: Path, tmp_path: Path, tiny_cls_model: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from retrieval import onnx_query

    def wrong(model):  # the second token's state instead of [CLS]'s
        full = onnx_query._full_encoder(model)
        return type("Wrong", (type(full),), {"forward": lambda self, *a: full(*a)[:, 1:2]})()

    monkeypatch.setattr(onnx_query, "_cls_encoder", wrong)
    index, _ = build_index(corpus, tmp_path / "idx", Settings(model=str(tiny_cls_model)))
    assert index.manifest["query_encoder"]["graph"] == "full"
    assert index.manifest["query_encoder"]["cosine_min"] >= 0.9999


def test_a_failing_fusion_step_keeps_the_unfused_graph(
        corpus: Path, tmp_path: Path, tiny_cls_model: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from retrieval import onnx_query

    def broken(path, config):
        raise ImportError("no onnxruntime.transformers here")

    monkeypatch.setattr(onnx_query, "_fuse", broken)
    index, _ = build_index(corpus, tmp_path / "idx", Settings(model=str(tiny_cls_model)))
    info = index.manifest["query_encoder"]
    assert (info["graph"], info["fused"], info["int8"]) == ("cls", False, False)
    assert info["cosine_min"] >= 0.9999


@pytest.mark.parametrize("fault", ["vectors differ", "quantizer fails", "dynamic only"])
def test_int8_weights_are_kept_only_when_their_vectors_match(
        corpus: Path, tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch,
        fault: str) -> None:
    import onnx
    from onnx import numpy_helper

    from retrieval import onnx_query

    real = onnx_query._quantize

    def faulty(path, quant):
        if fault == "quantizer fails":
            raise RuntimeError("MatMulNBits is not supported here")
        real(path, quant)
        if fault == "dynamic only" and quant != "dynamic":
            return
        model = onnx.load(str(path))
        for init in model.graph.initializer:  # 8-bit rounding far coarser than real
            if init.data_type == onnx.TensorProto.FLOAT:
                w = numpy_helper.to_array(init)
                init.CopyFrom(numpy_helper.from_array(w * 1.2 + 0.05, init.name))
        onnx.save(model, str(path))

    monkeypatch.setattr(onnx_query, "_quantize", faulty)
    index, _ = build_index(corpus, tmp_path / "idx", Settings(model=str(tiny_model)))
    info = index.manifest["query_encoder"]
    assert info["cosine_min"] >= 0.9999
    ops = {n.op_type for n in onnx.load(str(index.folder / info["onnx"])).graph.node}
    # Of the variants that pass, the fastest (or one nearly as fast and smaller) is kept:
    # never one whose vectors were spoiled.
    if fault == "dynamic only":
        assert info["quant"] != "dynamic" and "MatMulInteger" not in ops
        return
    assert not info["int8"] and info["quant"] == "none"
    assert "MatMulNBits" not in ops and "MatMulInteger" not in ops


@pytest.mark.parametrize("quant", ["dynamic", "blocks"])
def test_quantizing_keeps_an_application_without_logging_setup_quiet(
        tmp_path: Path, tiny_model: Path, quant: str) -> None:
    import subprocess
    import sys

    from retrieval import onnx_query

    embedder = Embedder(str(tiny_model))
    embedder.warm_up()
    st = embedder._model
    enc = st.tokenizer(["测试", "党建引领基层治理"], padding=True, return_tensors="pt")
    onnx_query._export_variant(st[0].auto_model.eval(), enc, tmp_path / "q.onnx", "full", True)
    code = ("import logging, sys; from pathlib import Path; from retrieval import onnx_query; "
            f"onnx_query._quantize(Path(sys.argv[1]), {quant!r}); "
            "logging.getLogger('app').warning('app warning'); logging.getLogger('app').info('hidden'); "
            "logging.basicConfig(level=logging.INFO, format='%(message)s'); "
            f"onnx_query._quantize(Path(sys.argv[1] + '2'), {quant!r}); logging.info('app info')")
    import shutil

    shutil.copy(tmp_path / "q.onnx", tmp_path / "q.onnx2")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "q.onnx")],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    # The quantizers log a line per weight; the app's own logging is as it was (last-resort
    # handler for warnings, nothing at INFO), then as it set it up (INFO, its format).
    assert out.stdout == "" and out.stderr == "app warning\napp info\n", out.stderr[-2000:]


def test_onnx_encoder_keeps_dense_retrieval_without_the_model(corpus: Path, tmp_path: Path,
                                                              tiny_model: Path) -> None:
    import shutil

    model = tmp_path / "model-copy"
    shutil.copytree(tiny_model, model)
    build_index(corpus, tmp_path / "idx", Settings(model=str(model)))
    shutil.rmtree(model)  # questions need only the index folder now
    warnings: list[str] = []
    s = Searcher(Index.load(tmp_path / "idx"), Settings(model=str(model)), warn=warnings.append)
    assert s.search("鄭永強是誰？")[0].dense is not None and not warnings

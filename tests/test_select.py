import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, List, Value

from hf_crossaug.stages.select import (
    STRATEGIES,
    SelectionConfig,
    SelectionContext,
    SelectionStrategy,
    get_strategy,
    kmeans_labels,
    register,
    select,
    select_all,
    select_with_report,
)

N_CLASSES, PER_CLASS, EPOCHS = 3, 40, 3
FEATURES = Features(
    {
        "id": Value("string"),
        "text": Value("string"),
        "prompt_label": ClassLabel(names=["neg", "neu", "pos"]),
        "teacher_probs": List(Value("float32")),
        "teacher_label": ClassLabel(names=["neg", "neu", "pos"]),
        "teacher_confidence": Value("float32"),
        "epoch_probs": List(List(Value("float32"))),
    }
)


def make_ds(per_class=(PER_CLASS,) * N_CLASSES, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(per_class)])
    rng.shuffle(labels)  # classes interleaved, so row order is not class order
    n = len(labels)
    probs = rng.dirichlet(np.ones(N_CLASSES), size=n).astype(np.float32)
    epochs = rng.dirichlet(np.ones(N_CLASSES), size=(n, EPOCHS)).astype(np.float32)
    return Dataset.from_dict(
        {
            "id": [f"g{i:04d}" for i in rng.permutation(n)],
            "text": [f"text number {i}" for i in range(n)],
            "prompt_label": labels.tolist(),
            "teacher_probs": probs.tolist(),
            "teacher_label": probs.argmax(1).tolist(),
            "teacher_confidence": probs.max(1).tolist(),
            "epoch_probs": epochs.tolist(),
        },
        features=FEATURES,
    )


@pytest.fixture(scope="module")
def ds():
    return make_ds()


def expected_top(ds, k, score_fn):
    """Row indices of the k highest ``score_fn(row_index_array, class)`` per class, via argsort."""
    labels = np.asarray(ds["prompt_label"])
    out = {}
    for c in range(N_CLASSES):
        rows = np.flatnonzero(labels == c)
        out[c] = set(rows[np.argsort(-score_fn(rows, c), kind="stable")[:k]].tolist())
    return out


def chosen(out, ds):
    ids = {i: n for n, i in enumerate(ds["id"])}
    res = {}
    for i, c in zip(out["id"], out["prompt_label"]):
        res.setdefault(c, set()).add(ids[i])
    return res


def test_top_k_picks_highest_teacher_probability_balanced_and_sorted(ds):
    out = select(ds, "top-k", SelectionConfig(k=7))
    assert len(out) == 21 and np.bincount(out["prompt_label"]).tolist() == [7, 7, 7]
    probs = np.asarray(ds["teacher_probs"])
    assert chosen(out, ds) == expected_top(ds, 7, lambda r, c: probs[r, c])
    # Sorted by class then rank; rank order is score order; explanation columns present.
    assert list(zip(out["prompt_label"], out["selection_rank"])) == [(c, r) for c in range(3) for r in range(7)]
    for c in range(3):
        scores = [s for s, l in zip(out["top_score"], out["prompt_label"]) if l == c]
        assert scores == sorted(scores, reverse=True)
    assert set(out["selected_by"]) == {"top-k"}


def test_amb_and_easy_pick_highest_std_and_mean(ds):
    ep = np.asarray(ds["epoch_probs"])
    out = select(ds, "amb-k", SelectionConfig(k=5))
    assert chosen(out, ds) == expected_top(ds, 5, lambda r, c: ep[r, :, c].std(1))
    assert {"amb_variability", "amb_confidence"} <= set(out.column_names)
    out = select(ds, "easy-k", SelectionConfig(k=5))
    assert chosen(out, ds) == expected_top(ds, 5, lambda r, c: ep[r, :, c].mean(1))
    best_class0 = ep[np.asarray(ds["prompt_label"]) == 0, :, 0].mean(1).max()
    np.testing.assert_allclose(out["easy_confidence"][0], best_class0, rtol=1e-6)


def test_rand_k_is_seeded(ds):
    a = select(ds, "rand-k", SelectionConfig(k=10, seed=1))
    b = select(ds, "rand-k", SelectionConfig(k=10, seed=1))
    c = select(ds, "rand-k", SelectionConfig(k=10, seed=2))
    assert a["id"] == b["id"] and a["id"] != c["id"]
    assert np.bincount(a["prompt_label"]).tolist() == [10, 10, 10]
    assert a["rand_rank"] == a["selection_rank"]


def blob_data(n_blobs=5, per_blob=8, dim=16, seed=3):
    """Each class is ``n_blobs`` tight clusters in embedding space; returns (ds, embeddings, blob ids)."""
    rng = np.random.default_rng(seed)
    ds = make_ds(per_class=(n_blobs * per_blob,) * N_CLASSES, seed=seed)
    labels = np.asarray(ds["prompt_label"])
    centres = rng.normal(size=(N_CLASSES, n_blobs, dim))
    emb, blob = np.zeros((len(ds), dim)), np.zeros(len(ds), dtype=int)
    for c in range(N_CLASSES):
        rows = np.flatnonzero(labels == c)
        blob[rows] = np.repeat(np.arange(n_blobs), per_blob)
        emb[rows] = centres[c, blob[rows]] + 0.01 * rng.normal(size=(len(rows), dim))
    return ds, emb, blob


@pytest.mark.parametrize("backend", ["faiss", "sklearn"])
def test_div_k_takes_best_of_each_blob(backend):
    ds, emb, blob = blob_data()
    probs, labels = np.asarray(ds["teacher_probs"]), np.asarray(ds["prompt_label"])
    cfg = SelectionConfig(k=10, n_clusters=5, kmeans_backend=backend)
    out = select(ds, "div-k", cfg, embeddings=emb)
    idx = {i: n for n, i in enumerate(ds["id"])}
    picked = np.array([idx[i] for i in out["id"]])
    for c in range(N_CLASSES):
        mine = picked[np.asarray(out["prompt_label"]) == c]
        first, second = mine[:5], mine[5:]
        # Round 1: one row per blob, each the blob's best; round 2: each blob's second best.
        assert sorted(blob[first]) == list(range(5)) and sorted(blob[second]) == list(range(5))
        for b in range(5):
            in_blob = np.flatnonzero((labels == c) & (blob == b))
            ranked = in_blob[np.argsort(-probs[in_blob, c])]
            assert first[blob[first] == b][0] == ranked[0] and second[blob[second] == b][0] == ranked[1]
        # Clusters found == blobs (labels may be permuted); scores descend within a round.
        clusters = np.asarray(out["div_cluster"])[np.asarray(out["prompt_label"]) == c]
        assert len(set(zip(clusters, blob[mine]))) == 5
        scores = np.asarray(out["div_score"])[np.asarray(out["prompt_label"]) == c]
        assert (np.diff(scores[:5]) <= 0).all() and (np.diff(scores[5:]) <= 0).all()


def test_div_k_uses_embed_fn_lazily_and_once():
    ds, emb, _ = blob_data()
    calls = []

    def embed(texts):
        calls.append(texts)
        return emb

    res = select_all(ds, SelectionConfig(k=5, n_clusters=5), embed_fn=embed)
    assert len(calls) == 1 and calls[0][0] == ds[0]["text"]
    assert all(len(d) == 15 for d, _ in res.values())
    select(ds, "top-k", SelectionConfig(k=5), embed_fn=embed)  # top-k never embeds
    assert len(calls) == 1
    # A shared context re-embeds only when it is handed a different dataset.
    ctx = SelectionContext(SelectionConfig(k=2, n_clusters=2), embed_fn=lambda t: calls.append(t) or emb[: len(t)])
    for part in (ds, ds, ds.select(range(20))):
        assert len(select_with_report(part, "div-k", ctx.config, context=ctx)[0]) == 6
    assert len(calls) == 3 and len(calls[-1]) == 20
    with pytest.raises(ValueError, match="different SelectionConfig"):
        select_with_report(ds, "div-k", SelectionConfig(k=3), context=ctx)
    with pytest.raises(ValueError, match="div-k needs embeddings"):
        select(ds, "div-k", SelectionConfig(k=5))


def test_kmeans_labels_small_and_seeded():
    x = np.random.default_rng(0).normal(size=(12, 8))
    assert (kmeans_labels(x, 4, seed=1) == kmeans_labels(x, 4, seed=1)).all()
    assert sorted(kmeans_labels(x, 12, seed=1)) == list(range(12))


def test_short_class_keeps_everything_and_is_reported():
    ds = make_ds(per_class=(20, 20, 3))
    emb = np.random.default_rng(0).normal(size=(len(ds), 8))
    for strategy in STRATEGIES:
        out, report = select_with_report(ds, strategy, SelectionConfig(k=10), embeddings=emb)
        assert np.bincount(out["prompt_label"]).tolist() == [10, 10, 3], strategy
        assert report.available == {0: 20, 1: 20, 2: 3} and report.selected == {0: 10, 1: 10, 2: 3}
        assert report.short == [2]


def test_errors(ds):
    with pytest.raises(ValueError, match=r"unknown selection strategy 'nope'; known strategies: amb-k, div-k"):
        get_strategy("nope")
    with pytest.raises(ValueError, match=r"column 'epoch_probs' is missing; strategy 'amb-k' needs it"):
        select(ds.remove_columns("epoch_probs"), "amb-k", SelectionConfig(k=3))
    with pytest.raises(ValueError, match=r"column 'label' is missing; strategy 'rand-k'"):
        select(ds, "rand-k", SelectionConfig(k=3, class_column="label"))
    # configs are checked (one line naming the field) when a stage uses them, as recipes are when loaded
    with pytest.raises(ValueError, match="field 'k' must be >= 1, got 0"):
        select(ds, "top-k", SelectionConfig(k=0))
    cfg = SelectionConfig(k=3)
    cfg.k = 2.5
    with pytest.raises(ValueError, match="field 'k' must be an integer, got 2.5"):
        select(ds, "top-k", cfg)
    with pytest.raises(ValueError, match="field 'kmeans_backend' must be one of faiss, sklearn, got 'cuml'"):
        select(ds, "div-k", SelectionConfig(k=3, kmeans_backend="cuml"))


def test_input_unchanged_and_reselection(ds):
    before, fp = ds.to_dict(), ds._fingerprint
    out = select(ds, "top-k", SelectionConfig(k=4))
    again = select(out, "easy-k", SelectionConfig(k=2))  # re-selecting replaces the bookkeeping columns
    assert ds.to_dict() == before and ds._fingerprint == fp
    assert set(again["selected_by"]) == {"easy-k"} and len(again) == 6


def test_register_new_strategy_end_to_end(ds):
    @register
    class LowConfidence(SelectionStrategy):
        name = "low-k"
        columns = ("low_confidence",)
        requires = ("teacher_confidence",)

        def scores(self, ds, class_id, rows, ctx):
            conf = ctx.array(ds, "teacher_confidence")[rows]
            return {"low_confidence": -conf}

    try:
        out = select(ds, "low-k", SelectionConfig(k=3))
        conf = np.asarray(ds["teacher_confidence"])
        assert chosen(out, ds) == expected_top(ds, 3, lambda r, c: -conf[r])
        assert set(out["selected_by"]) == {"low-k"} and "low_confidence" in out.column_names
        with pytest.raises(ValueError, match="already registered"):
            register(type("Other", (LowConfidence,), {}))
    finally:
        STRATEGIES.pop("low-k")

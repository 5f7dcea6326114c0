"""Selection stage: keep up to ``k`` generations per class, by one of the strategies of arXiv 2407.10582.

Every strategy is class-balanced (the generator is asked for each class equally, so the selection
should not undo that), seeded and deterministic (ties break on ``id``), and explains itself: it adds
its own score columns plus ``selected_by`` and ``selection_rank`` to the rows it keeps. The input
dataset is never modified; the output is ``ds.select(indices)`` sorted by class, then rank.

A new strategy is one small class: set ``name``, ``columns`` and ``requires``, implement
``scores`` (rank by the first column, highest first) or override ``pick``, and decorate with
``@register``.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import asdict, dataclass, field
from typing import Callable, ClassVar, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, Features, Value

from ..config.base import check
from ..config.select import KMEANS_BACKENDS, SelectionConfig

EmbedFn = Callable[[list[str]], np.ndarray]


@dataclass
class SelectionReport:
    """What one strategy did: rows available and kept per class (``short`` = classes with fewer than k)."""

    strategy: str
    k: int
    available: dict = field(default_factory=dict)
    selected: dict = field(default_factory=dict)

    @property
    def short(self) -> list:
        return [c for c, n in self.available.items() if n < self.k]


@dataclass
class SelectionContext:
    """Per-call state shared by strategies: config, embeddings (built lazily) and cached column arrays."""

    config: SelectionConfig
    embeddings: np.ndarray | None = None
    embed_fn: EmbedFn | None = None
    text_columns: tuple[str, ...] = ("text",)
    _arrays: dict = field(default_factory=dict, repr=False)
    _embedded: str | None = field(default=None, repr=False)  # fingerprint embed_fn's output belongs to

    def array(self, ds: Dataset, column: str, ndim: int = 1) -> np.ndarray:
        """A column as a dense numpy array (lists of lists must be rectangular), read once via Arrow.
        Keyed by fingerprint, so one context can serve several strategies and datasets."""
        key = (ds._fingerprint, column)
        if key not in self._arrays:
            self._arrays[key] = _dense(ds.with_format("arrow")[column], column, ndim)
        return self._arrays[key]

    def get_embeddings(self, ds: Dataset) -> np.ndarray:
        """Precomputed embeddings if given, else ``embed_fn`` over the joined text columns (once per dataset)."""
        stale = self.embeddings is None or self._embedded not in (None, ds._fingerprint)
        if stale and self.embed_fn is None:
            raise ValueError("div-k needs embeddings: pass `embeddings` or `embed_fn`")
        if stale:
            for col in self.text_columns:
                if col not in ds.column_names:
                    raise ValueError(f"text column {col!r} is missing; div-k needs it to embed the rows")
            cols = [ds[c] for c in self.text_columns]
            texts = [" ".join(str(v) for v in vals) for vals in zip(*cols)]
            self.embeddings, self._embedded = np.asarray(self.embed_fn(texts)), ds._fingerprint
        emb = np.asarray(self.embeddings)
        if emb.ndim != 2 or emb.shape[0] != len(ds):
            raise ValueError(f"embeddings have shape {emb.shape}; expected ({len(ds)}, dim), one row per example")
        return emb


def _dense(arr: pa.ChunkedArray | pa.Array, column: str, ndim: int) -> np.ndarray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], arr.type)
    if arr.null_count:
        raise ValueError(f"column {column!r} has missing values")
    shape = [len(arr)]
    for _ in range(ndim - 1):
        widths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        if len(widths) and (widths.min() != widths.max() or arr.flatten().null_count):
            raise ValueError(f"column {column!r} is ragged; expected a rectangular {ndim}-d array")
        shape.append(int(widths[0]) if len(widths) else 0)
        arr = arr.flatten()
    return arr.to_numpy(zero_copy_only=False).reshape(shape)


class SelectionStrategy:
    """Base class. ``pick`` ranks the rows of one class; the default ranks by ``scores``' first column."""

    name: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]  # score columns added to the kept rows
    requires: ClassVar[tuple[str, ...]] = ()  # input columns, checked before anything runs
    dtypes: ClassVar[dict[str, str]] = {}  # score columns that are not float64 (ranks, cluster ids)

    @classmethod
    def added_features(cls) -> Features:
        """The columns `select_with_report` adds to the kept rows, known before anything runs (a dataset
        builder declares them without selecting)."""
        return Features({**{c: Value(cls.dtypes.get(c, "float64")) for c in cls.columns},
                         "selected_by": Value("string"), "selection_rank": Value("int64")})

    def scores(self, ds: Dataset, class_id, rows: np.ndarray, ctx: SelectionContext) -> dict[str, np.ndarray]:
        """One array per name in ``columns``, aligned with ``rows``."""
        raise NotImplementedError

    def pick(self, ds: Dataset, class_id, rows: np.ndarray, ctx: SelectionContext) -> tuple[np.ndarray, dict]:
        """Positions into ``rows`` in rank order (at most k), and each score column for those positions."""
        values = self.scores(ds, class_id, rows, ctx)
        order = np.lexsort((_tiebreak(ds, rows, ctx), -np.asarray(values[self.columns[0]], dtype=float)))
        order = order[: ctx.config.k]
        return order, {c: np.asarray(values[c])[order] for c in self.columns}


def _tiebreak(ds: Dataset, rows: np.ndarray, ctx: SelectionContext) -> np.ndarray:
    """Ties break on ``id`` so the result does not depend on row order; row position if there is no id."""
    if "id" in ds.column_names:
        return ctx.array(ds, "id")[rows].astype(str)
    return rows


def _class_probs(ds: Dataset, class_id, rows: np.ndarray, ctx: SelectionContext, column: str) -> np.ndarray:
    """Probability of ``class_id`` for ``rows``; column is [N, C] or [N, E, C]."""
    arr = ctx.array(ds, column, 2 if column == "teacher_probs" else 3)
    n_classes = arr.shape[-1]
    if not (isinstance(class_id, (int, np.integer)) and 0 <= class_id < n_classes):
        raise ValueError(f"class {class_id!r} is not an index into {column!r} (width {n_classes})")
    return arr[rows, ..., class_id]


STRATEGIES: dict[str, type[SelectionStrategy]] = {}


def register(cls: type[SelectionStrategy]) -> type[SelectionStrategy]:
    """Class decorator: make a strategy available by its ``name``."""
    name = getattr(cls, "name", None)
    if not name or not getattr(cls, "columns", None):
        raise ValueError(f"{cls.__name__} needs a non-empty `name` and `columns`")
    if name in STRATEGIES and STRATEGIES[name] is not cls:
        raise ValueError(f"strategy {name!r} is already registered by {STRATEGIES[name].__name__}")
    STRATEGIES[name] = cls
    return cls


def get_strategy(name: str) -> SelectionStrategy:
    try:
        return STRATEGIES[name]()
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise ValueError(f"unknown selection strategy {name!r}; known strategies: {known}") from None


@register
class RandK(SelectionStrategy):
    """Uniform sample: the baseline every other strategy has to beat."""

    name = "rand-k"
    columns = ("rand_rank",)
    dtypes = {"rand_rank": "int64"}

    def pick(self, ds, class_id, rows, ctx):
        # Seeded per class so one class's size does not change another class's sample.
        key = int(class_id) if isinstance(class_id, (int, np.integer)) else zlib.crc32(str(class_id).encode())
        rng = np.random.default_rng([ctx.config.seed, key])
        order = rng.permutation(len(rows))[: ctx.config.k]
        return order, {"rand_rank": np.arange(len(order))}


@register
class TopK(SelectionStrategy):
    """Rows the teacher finds most typical of the class the prompt asked for."""

    name = "top-k"
    columns = ("top_score",)
    requires = ("teacher_probs",)

    def scores(self, ds, class_id, rows, ctx):
        return {"top_score": _class_probs(ds, class_id, rows, ctx, "teacher_probs")}


@register
class AmbK(SelectionStrategy):
    """Dataset cartography's ambiguous region: the teacher's belief in the class moves across epochs."""

    name = "amb-k"
    columns = ("amb_variability", "amb_confidence")
    requires = ("epoch_probs",)

    def scores(self, ds, class_id, rows, ctx):
        p = _class_probs(ds, class_id, rows, ctx, "epoch_probs")  # [n, E]
        return {"amb_variability": p.std(axis=1), "amb_confidence": p.mean(axis=1)}


@register
class EasyK(SelectionStrategy):
    """Dataset cartography's easy region: consistently high belief in the class across epochs."""

    name = "easy-k"
    columns = ("easy_confidence", "easy_variability")
    requires = ("epoch_probs",)

    def scores(self, ds, class_id, rows, ctx):
        p = _class_probs(ds, class_id, rows, ctx, "epoch_probs")
        return {"easy_confidence": p.mean(axis=1), "easy_variability": p.std(axis=1)}


@register
class DivK(SelectionStrategy):
    """Cover the class: cluster its embeddings, take each cluster's best (by teacher probability),
    then each cluster's second best, and so on until k, so no region of the class dominates."""

    name = "div-k"
    columns = ("div_cluster", "div_score")
    dtypes = {"div_cluster": "int64"}
    requires = ("teacher_probs",)

    def pick(self, ds, class_id, rows, ctx):
        cfg = ctx.config
        score = _class_probs(ds, class_id, rows, ctx, "teacher_probs").astype(float)
        emb = ctx.get_embeddings(ds)[rows]
        labels = kmeans_labels(emb, min(cfg.n_clusters, len(rows)), cfg.seed, cfg.kmeans_niter, cfg.kmeans_backend)
        tie = _tiebreak(ds, rows, ctx)
        by_score = np.lexsort((tie, -score, labels))  # grouped by cluster, best first
        within = np.empty(len(rows), dtype=np.int64)
        starts = np.searchsorted(labels[by_score], labels[by_score], side="left")
        within[by_score] = np.arange(len(rows)) - starts
        # Round r holds every cluster's r-th best; inside a round, higher score first.
        order = np.lexsort((tie, -score, within))[: cfg.k]
        return order, {"div_cluster": labels[order], "div_score": score[order]}


def kmeans_labels(x: np.ndarray, n_clusters: int, seed: int, niter: int = 20, backend: str = "faiss") -> np.ndarray:
    """Spherical k-means (cosine) cluster id per row of ``x``; rows are L2-normalised here."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or not 1 <= n_clusters <= len(x):
        raise ValueError(f"kmeans needs a 2-d array with at least n_clusters={n_clusters} rows, got {x.shape}")
    if backend not in KMEANS_BACKENDS:
        raise ValueError(f"unknown kmeans backend {backend!r}; known backends: {', '.join(KMEANS_BACKENDS)}")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if n_clusters == 1:
        return np.zeros(len(x), dtype=np.int64)
    if backend == "faiss":
        return _faiss_kmeans(x, n_clusters, seed, niter)
    from sklearn.cluster import KMeans

    # Euclidean k-means on unit vectors: the same assignments as cosine, centroids not renormalised.
    km = KMeans(n_clusters=n_clusters, n_init=1, max_iter=niter, random_state=seed)
    return km.fit_predict(x.astype(np.float64)).astype(np.int64)


_THREADPOOLS = None


def _blas_threads(limit: int | None):
    """``threadpoolctl`` limit on BLAS/OpenMP threads; the controller (a scan of loaded libraries, ~40 ms)
    is built once per process, not per class."""
    global _THREADPOOLS
    from threadpoolctl import ThreadpoolController

    if _THREADPOOLS is None:
        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=limit)


def _faiss_kmeans(x: np.ndarray, n_clusters: int, seed: int, niter: int) -> np.ndarray:
    import faiss
    from sklearn.cluster import kmeans_plusplus

    # faiss seeds with random rows, which often puts two centroids in one natural cluster and merges two
    # others; k-means++ seeding avoids that. It runs on a sample of 32 rows per centroid: seeding only
    # needs the modes, and faiss refines on (up to 256 per centroid) rows after. min_points_per_centroid=1:
    # small classes are expected, so silence faiss's warning about them.
    km = faiss.Kmeans(x.shape[1], n_clusters, niter=niter, seed=seed, spherical=True, min_points_per_centroid=1)
    rng = np.random.default_rng(seed)
    n_seed = 32 * n_clusters
    sample = x if len(x) <= n_seed else x[rng.choice(len(x), n_seed, replace=False)]
    # One class of a selection is a small problem (about n x 384 x 25 flops per iteration): thread
    # start-up and OpenMP spinning cost more than they save, and hurt badly when the cores are shared.
    threads = faiss.omp_get_max_threads()
    small = len(x) * n_clusters <= 2_000_000
    try:
        if small:
            faiss.omp_set_num_threads(1)
        with _blas_threads(1 if small else None):
            init, _ = kmeans_plusplus(sample.astype(np.float64), n_clusters, random_state=seed)  # float32: ~10x slower
            km.train(x, init_centroids=np.ascontiguousarray(init, dtype=np.float32))
            return km.index.search(x, 1)[1][:, 0].astype(np.int64)
    finally:
        faiss.omp_set_num_threads(threads)


def select_with_report(ds: Dataset, strategy: str, config: SelectionConfig, embeddings: np.ndarray | None = None,
                       embed_fn: EmbedFn | None = None, text_columns: Sequence[str] = ("text",), *,
                       context: SelectionContext | None = None) -> tuple[Dataset, SelectionReport]:
    """``select`` plus how many rows each class had and kept (a class with fewer than k keeps all).
    Pass one ``context`` to several calls to share embeddings and column reads between strategies."""
    check(config, "selection")
    strat = get_strategy(strategy)
    if context is not None and context.config != config:
        raise ValueError("the SelectionContext was built for a different SelectionConfig")
    ctx = context or SelectionContext(config, embeddings, embed_fn, tuple(text_columns))
    for col in (config.class_column, *strat.requires):
        if col not in ds.column_names:
            raise ValueError(f"column {col!r} is missing; strategy {strategy!r} needs it")
    labels = ctx.array(ds, config.class_column)
    feature = ds.features[config.class_column]
    classes = list(range(feature.num_classes)) if hasattr(feature, "num_classes") else []
    classes = sorted(set(classes) | set(np.unique(labels).tolist()))
    report = SelectionReport(strategy, config.k)
    indices, class_values = [], {c: [] for c in strat.columns}
    for class_id in classes:
        rows = np.flatnonzero(labels == class_id)
        report.available[class_id] = len(rows)
        order, values = strat.pick(ds, class_id, rows, ctx) if len(rows) else (np.zeros(0, int), {})
        report.selected[class_id] = len(order)
        indices.extend(rows[order].tolist())
        for c in strat.columns:
            class_values[c].extend(np.asarray(values.get(c, [])).tolist())
    added = tuple(strat.added_features())
    # Explicit fingerprints: by default ``datasets`` pickles and hashes every added column (most of the
    # time of a large selection). The result is a function of the input, the strategy, config and rows.
    h = hashlib.sha256(f"{ds._fingerprint}|{strategy}|{sorted(asdict(config).items())}".encode())
    h.update(np.asarray(indices, dtype=np.int64).tobytes())
    fp = h.hexdigest()[:16]
    out = ds.remove_columns([c for c in added if c in ds.column_names]).select(indices, new_fingerprint=fp)
    ranks = [r for n in report.selected.values() for r in range(n)]
    new_columns = {**class_values, "selected_by": [strategy] * len(indices), "selection_rank": ranks}
    for i, (c, values) in enumerate(new_columns.items()):
        out = out.add_column(c, values, new_fingerprint=f"{fp}-{i}")
    return out, report


def select(ds: Dataset, strategy: str, config: SelectionConfig, embeddings: np.ndarray | None = None,
           embed_fn: EmbedFn | None = None, text_columns: Sequence[str] = ("text",)) -> Dataset:
    """Up to ``config.k`` rows per class chosen by ``strategy``, sorted by class then rank."""
    return select_with_report(ds, strategy, config, embeddings, embed_fn, text_columns)[0]


def select_all(ds: Dataset, config: SelectionConfig, embeddings: np.ndarray | None = None,
               embed_fn: EmbedFn | None = None, text_columns: Sequence[str] = ("text",),
               ) -> dict[str, tuple[Dataset, SelectionReport]]:
    """Every strategy in ``config.strategies``, sharing one context so ``embed_fn`` runs at most once."""
    ctx = SelectionContext(config, embeddings, embed_fn, tuple(text_columns))
    return {s: select_with_report(ds, s, config, context=ctx) for s in config.strategies}

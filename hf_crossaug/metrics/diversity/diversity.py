"""`evaluate` wrapper for the mean pairwise cosine distance of embeddings (arithmetic in hf_crossaug.metrics.functions)."""

import datasets
import evaluate
import numpy as np
from hf_crossaug.metrics.functions import diversity_score
from hf_crossaug.metrics.functions import DATA_SELECTION_CITATION

_DESCRIPTION = """\
Diversity of a set of texts as the mean pairwise cosine distance (1 - cosine similarity) of their
embeddings over all unordered pairs, as used to compare selection strategies for LLM-generated training data
(Fazili et al., 2024). Embeddings are L2-normalised inside. It is computed exactly on small sets (in O(n d)) and
estimated from uniformly sampled pairs on large ones; the sample size is reported.
"""

_KWARGS_DESCRIPTION = """
Args:
    embeddings (`list` of `list` of `float`): one embedding per text, all of the same dimension.
    method (`str`, *optional*, default `"auto"`): `"exact"`, `"sample"`, or `"auto"` (exact when n <= max_exact).
    max_exact (`int`, *optional*, default 2000): the largest n computed exactly under `"auto"`.
    sample_pairs (`int`, *optional*, default 200000): pairs drawn when sampling.
    seed (`int`, *optional*, default 0): seed of the pair sampler.
Returns:
    diversity (`float`): mean pairwise cosine distance, in [0, 2] (NaN for fewer than 2 rows).
    n (`int`): number of embeddings.
    exact (`int`): 1 if computed exactly over all pairs, 0 if estimated by sampling.
    sample_size (`int`): pairs sampled (0 when exact).
Examples:
    >>> from hf_crossaug.metrics import load_metric
    >>> metric = load_metric("diversity")
    >>> metric.compute(embeddings=[[1.0, 0.0], [0.0, 1.0]])["diversity"]
    1.0
"""

_CITATION = DATA_SELECTION_CITATION


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Diversity(evaluate.Metric):
    """Converts inputs and calls :func:`diversity_score`; the result is flattened to numbers."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"embeddings": datasets.Sequence(datasets.Value("float32"))}),
            reference_urls=["https://arxiv.org/abs/2407.10582"],
        )

    def _compute(self, embeddings, method="auto", max_exact=2000, sample_pairs=200_000, seed=0):
        # Rows arrive as Python lists of float32-cast values; an empty input has no dimension to infer.
        x = np.asarray(embeddings, dtype=np.float32) if len(embeddings) else np.zeros((0, 0), dtype=np.float32)
        r = diversity_score(x, max_exact=max_exact, sample_pairs=sample_pairs, seed=seed, method=method)
        return {
            "diversity": r["diversity"],
            "n": r["n"],
            "exact": int(r["method"] == "exact"),
            "sample_size": int(r["sample_size"] or 0),
        }

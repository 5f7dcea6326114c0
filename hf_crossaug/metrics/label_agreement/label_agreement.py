"""`evaluate` wrapper for agreement between prompt labels and teacher labels (arithmetic in hf_crossaug.metrics.functions)."""

import datasets
import evaluate
from hf_crossaug.metrics.functions import label_agreement
from hf_crossaug.metrics.functions import DATA_SELECTION_CITATION

_DESCRIPTION = """\
Agreement between the label a generator was prompted with and the label a teacher classifier assigns to the
generated text: the raw agreement rate, the rate per prompted class, and Cohen's kappa (agreement corrected for
chance). Low agreement flags generated text that does not carry its intended class, which is why generated data
is relabelled by a teacher and selected (Fazili et al., 2024).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): teacher labels.
    references (`list` of `int`): prompt labels (the class the generator was asked for).
    num_labels (`int`, *optional*): size of the label set; lists every class id (NaN when absent) and gives
        kappa the full label set.
Returns:
    agreement (`float`), cohen_kappa (`float`, NaN when undefined), n (`int`), and `agreement_<id>` (`float`)
    for each prompt label id.
Examples:
    >>> from hf_crossaug.metrics import load_metric
    >>> metric = load_metric("label_agreement")
    >>> metric.compute(predictions=[0, 1, 1, 2], references=[0, 1, 2, 2])["agreement"]
    0.75
"""

_CITATION = DATA_SELECTION_CITATION


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class LabelAgreement(evaluate.Metric):
    """Converts inputs and calls :func:`label_agreement` (teacher = predictions, prompt = references)."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://arxiv.org/abs/2407.10582"],
        )

    def _compute(self, predictions, references, num_labels=None):
        r = label_agreement(prompt_labels=references, teacher_labels=predictions, num_labels=num_labels)
        result = {"agreement": r["agreement"], "cohen_kappa": r["cohen_kappa"], "n": r["n"]}
        for label_id, rate in r["per_class"].items():
            result[f"agreement_{label_id}"] = rate
        return result

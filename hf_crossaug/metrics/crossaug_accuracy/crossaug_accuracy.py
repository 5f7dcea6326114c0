"""`evaluate` wrapper for accuracy and macro-F1, overall and per language (arithmetic in hf_crossaug.metrics.functions)."""

import datasets
import evaluate
from hf_crossaug.metrics.functions import classification_scores
from hf_crossaug.metrics.functions import per_language_scores

_DESCRIPTION = """\
Accuracy and macro-F1 of a classifier, overall and, when a language per row is given, per language plus the
unweighted average over languages (how zero-shot cross-lingual results are reported). Macro-F1 is given next
to accuracy because a class the model never predicts lowers it but barely moves accuracy on imbalanced data.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted label ids.
    references (`list` of `int`): gold label ids.
    languages (`list` of `str`, *optional*): the language of each row; adds `accuracy_<lang>`,
        `macro_f1_<lang>`, and `accuracy_avg` / `macro_f1_avg` (mean over languages).
    labels (`list` of `int`, *optional*): the full label set, so that classes absent from a split still count
        (as 0) in macro-F1.
Returns:
    accuracy (`float`), macro_f1 (`float`), n (`int`), and the per-language entries when `languages` is given.
Examples:
    >>> from hf_crossaug.metrics import load_metric
    >>> metric = load_metric("crossaug_accuracy")
    >>> r = metric.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0], languages=["hi", "hi", "sw", "sw"])
    >>> r["accuracy"], r["accuracy_hi"], r["accuracy_sw"], r["accuracy_avg"]
    (0.75, 1.0, 0.5, 0.75)
"""

_CITATION = """\
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and Varoquaux, G. and Gramfort, A. and Michel, V. and Thirion, B. and Grisel, O. and
          Blondel, M. and Prettenhofer, P. and Weiss, R. and Dubourg, V. and Vanderplas, J. and Passos, A. and
          Cournapeau, D. and Brucher, M. and Perrot, M. and Duchesnay, E.},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CrossaugAccuracy(evaluate.Metric):
    """Converts inputs and calls :func:`classification_scores` / :func:`per_language_scores`."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html"],
        )

    def _compute(self, predictions, references, languages=None, labels=None):
        result = dict(classification_scores(predictions, references, labels=labels))
        if languages is not None:
            for lang, scores in per_language_scores(predictions, references, languages, labels=labels).items():
                result[f"accuracy_{lang}"] = scores["accuracy"]
                result[f"macro_f1_{lang}"] = scores["macro_f1"]
        return result

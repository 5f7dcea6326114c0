"""The four seed methods hf_crossaug implements, cited by every dataset and model card it writes."""

from __future__ import annotations

SEED_PAPERS = (
    {"key": "fazili2024boosting", "arxiv": "2407.10582", "year": 2024,
     "title": "Boosting Zero-Shot Crosslingual Performance using LLM-Based Augmentations with Effective Data Selection",
     "authors": "Barah Fazili and Ashish Sunil Agrawal and Preethi Jyothi",
     "used_for": "class-conditioned generation, teacher labels, selection strategies, soft-label students"},
    {"key": "whitehouse2023llmpowered", "arxiv": "2305.14288", "year": 2023,
     "title": "LLM-powered Data Augmentation for Enhanced Cross-lingual Performance",
     "authors": "Chenxi Whitehouse and Monojit Choudhury and Alham Fikri Aji",
     "used_for": "few-shot generation in English or directly in the target language"},
    {"key": "ri2024selftranslatetrain", "arxiv": "2407.00454", "year": 2024,
     "title": "Self-Translate-Train: Enhancing Cross-Lingual Transfer of Large Language Models via Inherent Capability",
     "authors": "Ryokan Ri and Shun Kiyono and Sho Takase",
     "used_for": "LLM self-translation of training data, filters, code-switched pairs"},
    {"key": "kaddour2023synthetic", "arxiv": "2310.01119", "year": 2023,
     "title": "Synthetic Data Generation in Low-Resource Settings via Fine-Tuning of Large Language Models",
     "authors": "Jean Kaddour and Qi Liu",
     "used_for": "fine-tuned teacher LLMs that annotate or generate (DAFTT)"},
)


def bibtex() -> str:
    """BibTeX entries of the seed papers (arXiv ids, so every entry resolves)."""
    return "\n".join(
        f"@misc{{{p['key']},\n  title={{{p['title']}}},\n  author={{{p['authors']}}},\n  year={{{p['year']}}},\n"
        f"  eprint={{{p['arxiv']}}},\n  archivePrefix={{arXiv}}\n}}" for p in SEED_PAPERS)


def card_section() -> str:
    """Markdown for a card's Citation section: one line per paper, then the BibTeX."""
    lines = [f"- {p['authors']}. *{p['title']}*. {p['year']}. [arXiv:{p['arxiv']}](https://arxiv.org/abs/{p['arxiv']}) "
             f"({p['used_for']})" for p in SEED_PAPERS]
    return "\n".join(lines) + f"\n\n```bibtex\n{bibtex()}\n```"

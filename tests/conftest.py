"""Shared tiny builders: a tokenizer trained on the spot and a seeded tiny BERT classifier (no Hub access)."""

import pytest
import torch

# Tiny models on a 2-core box: intra-op threading costs more than it saves (about halves Trainer test time).
torch.set_num_threads(1)

SENTENCES = [
    "the movie was great and i loved it",
    "the film was bad and i hated it",
    "it was an ok film nothing special",
    "what a wonderful day in the park",
    "this is terrible service never again",
    "the food was fine but the room was cold",
    "i am not sure how i feel about this",
    "great acting good story nice music",
    "dit is een goede film",
    "das war ein schlechter tag",
]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """WordLevel tokenizer (< 100 tokens) with BERT-style [CLS] ... [SEP] post-processing."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(SENTENCES, trainers.WordLevelTrainer(vocab_size=100, special_tokens=specials))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=64,
    )


@pytest.fixture
def tiny_classifier_factory(tiny_tokenizer):
    """``factory(num_labels=3, seed=0)`` -> fresh seeded tiny BertForSequenceClassification, dropout 0."""
    from transformers import BertConfig, BertForSequenceClassification

    def factory(num_labels: int = 3, seed: int = 0, **overrides):
        cfg = dict(
            vocab_size=max(100, len(tiny_tokenizer)), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=32, max_position_embeddings=64, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0, classifier_dropout=0.0, num_labels=num_labels,
            pad_token_id=tiny_tokenizer.pad_token_id,
        )
        cfg.update(overrides)
        torch.manual_seed(seed)
        return BertForSequenceClassification(BertConfig(**cfg))

    return factory

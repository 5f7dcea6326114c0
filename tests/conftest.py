"""Shared tiny builders: a tokenizer trained on the spot and a seeded tiny BERT classifier (no Hub access)."""

import pytest
import torch

# session fixtures: a real `transformers serve` on 127.0.0.1 and a fault-injecting proxy (tests/server_fixtures.py)
pytest_plugins = ["server_fixtures"]

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


# Tiny models saved to folders, so tests pass model arguments as local paths (as a user without a network does).
LLM_TEXT = (
    "Premise: The old man walked home along the river as the sun went down.\n"
    "Hypothesis (definitely true): A man walked home in the evening.\n"
    "Sentence: The film was long, but the music and the acting were wonderful.\n"
    "Sentence: I did not like the food at that small restaurant near the station.\n"
    "Here are sentences from a travel guide.\n"
    "The museum opens at nine and closes at five on weekdays.\n"
    "She wrote a letter to her sister about the new house and the garden.\n"
)


def _byte_bpe(texts, vocab_size, specials):
    """A byte-level BPE trained on the spot: any character is representable, "\\n" decodes to a newline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory):
    """A seeded 2-layer LlamaForCausalLM (hidden 32) + byte-level BPE tokenizer, saved as safetensors."""
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llm")
    tok = _byte_bpe([LLM_TEXT], 400, ["<|endoftext|>", "<pad>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                        pad_token="<pad>", model_max_length=1024)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory):
    """A seeded 1-layer BertModel (hidden 16) + byte-level BPE tokenizer with [CLS] a [SEP] b [SEP]."""
    from tokenizers import processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    from hf_crossaug.stages.source import seed_path
    from hf_crossaug.config.tasks import get_task
    NLI = get_task("nli")
    SENTIMENT = get_task("sentiment")

    folder = tmp_path_factory.mktemp("tiny-encoder")
    texts = [seed_path(NLI).read_text(), seed_path(SENTIMENT).read_text()]
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = _byte_bpe(texts, 600, specials)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=128,
    )
    cfg = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


# A tiny built dataset and a student trained on it, shared by the Hub and Space tests.
HUB_DATASET_ID = "crossaug/xnli-sw-synth"


@pytest.fixture(scope="session")
def tiny_built_dataset(tiny_llm_dir, tiny_encoder_dir, tmp_path_factory):
    """``crossaug build`` output (NLI, tiny models, every strategy) whose card names ``HUB_DATASET_ID``."""
    from test_build_tiny import tiny_recipe

    from hf_crossaug.build.export import build_dataset

    tmp = tmp_path_factory.mktemp("hub-dataset")
    build_dataset(tiny_recipe("nli", tiny_llm_dir, tiny_encoder_dir), tmp / "xnli-sw-synth", tmp / "work",
                  repo_id=HUB_DATASET_ID, log=lambda m: None)
    return tmp / "xnli-sw-synth"


@pytest.fixture(scope="session")
def tiny_student(tiny_built_dataset, tiny_encoder_dir, tmp_path_factory):
    """A student trained (T-div-k, 1 epoch) on ``tiny_built_dataset``: safetensors, tokenizer, card."""
    from hf_crossaug.config.student import StudentConfig
    from hf_crossaug.students.classification import train_student

    out = tmp_path_factory.mktemp("hub-student") / "tiny-student"
    cfg = StudentConfig(model=str(tiny_encoder_dir), mode="T-div-k", epochs=1, batch_size=8, max_length=48, limit=24)
    train_student(cfg, str(tiny_built_dataset), "seed", None, out, log=lambda m: None)
    return out

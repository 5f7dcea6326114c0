"""LoRA fine-tuning of the LLM (DAFTT, Self-Translate-Train) on tiny models built in the tests: adapters are
safetensors reused on rerun, the generate stage merges them, annotations are parsed with counted drops,
label likelihood picks the most likely verbalisation, and DAFTT builds through the ordinary stages."""

import json

import numpy as np
import pytest
import torch
from datasets import Dataset, load_dataset
from huggingface_hub import DatasetCard

from hf_crossaug.build.export import build_dataset
from hf_crossaug.stages.daftt import DafttConfig, parse_annotations, split_labelled, training_rows
from hf_crossaug.stages.finetune import FinetuneConfig, answer_logprobs, answer_text, finetune_lora, load_causal_lm
from hf_crossaug.stages.generate import GenerationConfig, LocalGenerator, generate
from hf_crossaug.models.resolve import file_sha256, resolve_model
from hf_crossaug.config.recipe import Recipe
from hf_crossaug.methods.stt import predict_labels
from hf_crossaug.config.tasks import get_task
NLI, SENTIMENT = (get_task("nli"), get_task("sentiment"))
from test_build_tiny import tiny_recipe

PROMPTS = ["Sentence: the film was great\nSentiment:", "Sentence: the food was bad\nSentiment:",
           "Sentence: it opens at nine\nSentiment:"]
ANSWERS = ["positive", "negative", "neutral"]
TUNE = dict(epochs=20, learning_rate=5e-2, batch_size=3, r=4, dropout=0.0)


def pairs() -> Dataset:
    return Dataset.from_dict({"prompt": PROMPTS, "answer": [answer_text(a) for a in ANSWERS]})


def direct_logprob(model, tokenizer, prompt: str, answer: str) -> float:
    """Unbatched reference: log p(answer | prompt) from one forward pass over the concatenation."""
    p = tokenizer(prompt)["input_ids"]
    a = tokenizer(answer, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([p + a])).logits[0].float(), -1)
    return sum(logp[len(p) - 1 + k, t].item() for k, t in enumerate(a))


def test_lora_adapter_is_safetensors_and_reused(tiny_llm_dir, tmp_path):
    from peft import PeftModel

    config = FinetuneConfig(model=str(tiny_llm_dir), **TUNE)
    adapter = finetune_lora(pairs(), config, tmp_path, "unused")
    files = {p.name for p in adapter.path.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "crossaug_adapter.json"} <= files
    assert not any(f.endswith((".bin", ".pt")) for f in files) and not (adapter.path / "trainer").exists()
    info = adapter.card_fields()
    assert info["sha256"] == file_sha256(adapter.path / "adapter_model.safetensors")
    assert (info["r"], info["alpha"], info["epochs"], info["training_rows"]) == (4, 16, 20, 3)
    assert info["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]

    mtime = (adapter.path / "adapter_model.safetensors").stat().st_mtime_ns
    again = finetune_lora(pairs(), config, tmp_path, "unused")  # cached: no training
    assert again.path == adapter.path and again.info == adapter.info
    assert (adapter.path / "adapter_model.safetensors").stat().st_mtime_ns == mtime
    other = finetune_lora(pairs(), FinetuneConfig(model=str(tiny_llm_dir), **{**TUNE, "r": 2}), tmp_path, "x")
    assert other.path != adapter.path  # another config, another adapter

    # training moved the answers' likelihood up (the loss is on the answer tokens)
    tokenizer, base = load_causal_lm(resolve_model(str(tiny_llm_dir), "unused"))
    answers = [answer_text(a) for a in ANSWERS]
    before = np.diag(answer_logprobs(base, tokenizer, PROMPTS, answers)).sum()
    tuned = PeftModel.from_pretrained(base, str(adapter.path)).eval()
    after = np.diag(answer_logprobs(tuned, tokenizer, PROMPTS, answers)).sum()
    assert after > before + 1.0


def test_batched_answer_logprobs_equal_unbatched(tiny_llm_dir):
    tokenizer, model = load_causal_lm(resolve_model(str(tiny_llm_dir), "unused"))
    model.eval()
    answers = [answer_text(a) for a in ANSWERS] + [" a much longer answer than the others\n"]
    got = answer_logprobs(model, tokenizer, PROMPTS, answers, batch_size=5)  # mixed lengths, left padding
    want = np.array([[direct_logprob(model, tokenizer, p, a) for a in answers] for p in PROMPTS])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


class Favouring(torch.nn.Module):
    """A crafted LM whose every position puts high probability on the tokens of one answer."""

    def __init__(self, vocab: int, favoured: list[int]):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(vocab))
        self.bias.data[favoured] = 10.0

    def forward(self, input_ids, attention_mask=None, position_ids=None, logits_to_keep=0):
        logits = self.bias.expand(input_ids.shape[0], input_ids.shape[1], -1)
        return type("Out", (), {"logits": logits[:, -logits_to_keep:] if logits_to_keep else logits})()


@pytest.mark.parametrize("favour", [0, 1, 2])
def test_label_likelihood_picks_the_most_likely_label(tiny_llm_dir, favour):
    tokenizer, _ = load_causal_lm(resolve_model(str(tiny_llm_dir), "unused"))
    ids = tokenizer(answer_text(SENTIMENT.labels[favour]), add_special_tokens=False)["input_ids"]
    rows = Dataset.from_dict({"text": ["the film was great", "the food was bad"], "label": [0, 1]})
    preds = predict_labels(Favouring(len(tokenizer), ids), tokenizer, SENTIMENT, rows)
    assert preds.tolist() == [favour, favour]


def test_parse_annotations_counts_drops():
    ds = Dataset.from_dict({"generation": [" entailment\n", " Neutral.", "contradiction because", "  maybe so",
                                           "", "\n\n", " 42"]})
    out = parse_annotations(ds, NLI)
    assert list(out["prompt_label"]) == [0, 1, 2, -1, -1, -1, -1]
    assert list(out["drop_reason"]) == [None, None, None, "unknown_label", "empty", "empty", "unknown_label"]
    from hf_crossaug.stages.clean import drop_counts
    from hf_crossaug.stages.daftt import ANNOTATE_REASONS

    assert drop_counts(out, ANNOTATE_REASONS) == {"kept": 3, "empty": 2, "unknown_label": 2}


def test_daftt_training_rows_and_subset():
    source = Dataset.from_dict({"premise": ["p1", "p1", "p2", "p3"], "hypothesis": ["h1", "h2", "h3", "h4"],
                                "label": [0, 2, 1, 0]}, features=NLI.source_features())
    subset, rest = split_labelled(source, DafttConfig(mode="annotate", train_rows=3), seed=1)
    assert len(subset) == 3 and len(rest) == 1
    assert sorted(list(subset["hypothesis"]) + list(rest["hypothesis"])) == ["h1", "h2", "h3", "h4"]
    annotate = training_rows(NLI, source, "annotate", False, ["x"])
    assert list(annotate["answer"]) == [" entailment\n", " contradiction\n", " neutral\n", " entailment\n"]
    assert annotate["prompt"][0] == NLI.templates["lm.classify"].format(premise="p1", hypothesis="h1")
    gen = training_rows(NLI, source, "generate", True, ["x"])
    assert list(gen["answer"]) == [" h1\n", " h2\n", " h3\n", " h4\n", " p1\n", " p2\n", " p3\n"]  # distinct premises
    assert "definitely false" in gen["prompt"][1]
    with pytest.raises(ValueError, match="leaves none"):
        split_labelled(source, DafttConfig(mode="annotate", train_rows=4), seed=1)


def test_generator_merges_the_adapter_and_fingerprints_it(tiny_llm_dir, tmp_path):
    adapter = finetune_lora(pairs(), FinetuneConfig(model=str(tiny_llm_dir), **TUNE), tmp_path, "unused")
    base_cfg = GenerationConfig(model=str(tiny_llm_dir), temperature=0.0, max_new_tokens=6, shard_size=8)
    tuned_cfg = GenerationConfig(**{**base_cfg.__dict__, "adapter": str(adapter.path)})
    prompts = Dataset.from_dict({"prompt": PROMPTS})
    plain = generate(prompts, base_cfg, tmp_path / "gen", desc="g")
    tuned = generate(prompts, tuned_cfg, tmp_path / "gen", desc="g")
    assert len(list((tmp_path / "gen").glob("g-*"))) == 2  # the adapter is part of the work fingerprint
    assert list(tuned["generation"]) != list(plain["generation"])
    assert LocalGenerator(tuned_cfg)(PROMPTS)[0] == list(tuned["generation"])  # the same merged model, greedy
    with pytest.raises(FileNotFoundError, match="adapter_model.safetensors"):
        LocalGenerator(GenerationConfig(model=str(tiny_llm_dir), adapter=str(tmp_path)))


def daftt_recipe(task, llm, encoder, mode, **daftt):
    base = tiny_recipe(task, llm, encoder).to_dict()
    base["daftt"] = {"mode": mode, "train_rows": 6, "finetune": {"epochs": 2, "batch_size": 6, "r": 2}, **daftt}
    return Recipe.from_dict(base)


@pytest.mark.parametrize("task", ["sentiment", "nli"])
def test_daftt_generate_builds_through_the_ordinary_stages(task, tiny_llm_dir, tiny_encoder_dir, tmp_path):
    recipe = daftt_recipe(task, tiny_llm_dir, tiny_encoder_dir, "generate")
    summary = build_dataset(recipe, tmp_path / "out", tmp_path / "work", log=lambda m: None)
    stats = summary["stats"]
    adapters = list((tmp_path / "work").glob("daftt-lora-*"))
    assert len(adapters) == 1 and stats["daftt"]["adapter"]["path"] == str(adapters[0])
    assert stats["daftt"]["temperature"] == 0.8 and stats["daftt"]["labelled_rows"] == 6
    assert stats["counts"]["generations"]["prompts"] == 9  # per_class 3 x 3 labels
    raw = load_dataset(str(tmp_path / "out"), "raw", split="train", cache_dir=str(tmp_path / "hf"))
    assert len(raw) == stats["counts"]["generations"]["kept"] and "teacher_probs" in raw.column_names
    # every generation shard was made with the adapter merged in
    fps = [json.loads(p.read_text()) for p in (tmp_path / "work").glob("*/fingerprint.json")]
    assert fps and all(f["sampling"]["adapter_sha256"] == stats["daftt"]["adapter"]["sha256"] for f in fps)
    card = DatasetCard.load(tmp_path / "out" / "README.md").text
    assert "### Fine-tuned generator (DAFTT, arXiv 2310.01119)" in card
    assert f"sha256 `{stats['daftt']['adapter']['sha256']}`" in card and "r=2, alpha=16" in card
    assert "LoRA-tuned on 6 labelled source rows" in card

    before = sorted(p.name for p in (tmp_path / "work").rglob("*.safetensors"))
    build_dataset(recipe, tmp_path / "out", tmp_path / "work", log=lambda m: None)  # rerun: all cached
    assert sorted(p.name for p in (tmp_path / "work").rglob("*.safetensors")) == before


def test_daftt_annotate_with_nothing_parsed_is_a_clear_error(tiny_llm_dir, tiny_encoder_dir, tmp_path):
    recipe = daftt_recipe("sentiment", tiny_llm_dir, tiny_encoder_dir, "annotate", inputs=5)
    with pytest.raises(ValueError) as info:  # a random tiny model names no label
        build_dataset(recipe, tmp_path / "out", tmp_path / "work", log=lambda m: None)
    msg = str(info.value)
    assert msg.startswith("no annotation named a label: 5 prompts, 0 kept") and "\n" not in msg
    assert list((tmp_path / "work").glob("daftt-lora-*/adapter_model.safetensors"))  # the adapter is kept
    assert not (tmp_path / "out").exists()


def test_lora_sections_keep_old_cache_keys_and_take_the_seed():
    from hf_crossaug.build.pipeline import recipe_fingerprint

    base = Recipe.from_dict({"name": "t", "task": "nli"})
    assert "daftt" not in json.dumps(base.to_dict()["generation"])
    with_stt = Recipe.from_dict({"name": "t", "task": "nli", "language": "sw", "route": "self-translate",
                                 "translate": {"backend": "llm"}, "stt": {}})
    plain = Recipe.from_dict({"name": "t", "task": "nli", "language": "sw", "route": "self-translate",
                              "translate": {"backend": "llm"}})
    assert recipe_fingerprint(with_stt) == recipe_fingerprint(plain)  # fine-tuning does not change raw
    daftt = Recipe.from_dict({"name": "t", "task": "nli", "daftt": {"mode": "annotate"}})
    assert recipe_fingerprint(daftt) != recipe_fingerprint(base)
    assert daftt.with_overrides(seed=7).daftt.finetune.seed == 7
    assert daftt.daftt.sampling_temperature == 0.1


def test_evaluate_lm_scores_each_adapter_on_its_own(tiny_llm_dir, tmp_path):
    """The STT report's columns (base, English-only baseline, STT) must come from separate adapters, not
    from adapters stacked on each other: two adapters taught opposite answers score 1 and 0."""
    from hf_crossaug.methods.stt import evaluate_lm

    positive = SENTIMENT.labels.index("positive")
    rows = [{"text": t, "label": positive} for t in ("the film was great", "the food was bad", "it opens at nine")]
    target = tmp_path / "dev.jsonl"
    target.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompts = [SENTIMENT.templates["lm.classify"].format(**r) for r in rows]
    # LoRA on the output layer: the tiny model's attention adapters barely move a byte-level answer
    config = FinetuneConfig(model=str(tiny_llm_dir), **{**TUNE, "epochs": 30, "target_modules": ["lm_head"]})
    adapters = {name: finetune_lora(Dataset.from_dict({"prompt": prompts, "answer": [answer_text(name)] * 3}),
                                    config, tmp_path, "unused", desc=name) for name in ("positive", "negative")}
    res = evaluate_lm(str(tiny_llm_dir), adapters, SENTIMENT, {"xx": str(target)})
    assert set(res) >= {"before", "positive", "negative"}
    assert res["positive"]["xx"]["accuracy"] == 1.0 and res["positive"]["xx"]["n"] == 3
    assert res["negative"]["xx"]["accuracy"] == 0.0

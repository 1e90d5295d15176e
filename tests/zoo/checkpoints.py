"""The model zoo's fixture factory: a subword tokenizer of each style trained on the embedded
world, and a tiny checkpoint per (architecture, tokenizer style) trained briefly on it.

Two tokenizer styles, the two that behave differently from the benchmark's word-level one:

- `bytelevel`: byte-level BPE, no BOS, `<|endoftext|>` as EOS and pad (GPT-2 / Qwen style).
  A space belongs to the *next* word ("Answer: dorin" is "Answer", ":", " dorin"), so a
  prompt ending in "Answer: " ends on a lone-space token the training text never had there.
- `metaspace`: BPE over Metaspace pieces ("▁dorin"), `<s>` prepended, `</s>` EOS, no pad
  token (Llama-2 / SentencePiece style): padding falls back to EOS.

Each model is trained for `RECIPE.steps` (about 200) AdamW steps on the world's documents with
the benchmark's own loop (`bench.train.train_lm`), so greedy outputs follow the world's formats
instead of being noise. Checkpoints are saved with `save_pretrained` (safetensors, hub layout)
and read back through `unlearnspec.models.loading.load_causal_lm`, the loader every spec uses.

Cache: `<cache>/zoo/<style>-<key>/{tokenizer,data,<arch>}`, the key hashing the recipe, the
architectures' configs, ZOO_VERSION and the torch / transformers / tokenizers versions (the
weights depend on them), built once under a file lock by `bench.build._build_once`, so xdist
workers and later runs share it (`UNLEARNSPEC_TEST_ZOO_CACHE` names a cache to reuse).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.zoo.archs import BY_NAME, Arch, build_config

ZOO_VERSION = "2"  # 2: QA pairs also as prompt + answer tokens; VerbMem cut before a space
STYLES = ("bytelevel", "metaspace")
WORLD_PRESET = "micro"


@dataclass(frozen=True)
class Recipe:
    vocab_size: int = 512
    epochs: int = 8  # x 25 batches of the micro world's 207 documents + 180 QA pairs = 200 steps
    lr: float = 3e-3
    batch_size: int = 16
    warmup_frac: float = 0.1
    seed: int = 0


RECIPE = Recipe()


def _versions() -> dict[str, str]:
    import tokenizers
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__}


def style_key(style: str) -> str:
    """The cache key of one tokenizer style's zoo (all its architectures)."""
    blob = json.dumps({"v": ZOO_VERSION, "style": style, "recipe": asdict(RECIPE),
                       "world": WORLD_PRESET, "versions": _versions(),
                       "archs": [BY_NAME[n].key() for n in sorted(BY_NAME)]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def style_dir(style: str, cache: Path) -> Path:
    if style not in STYLES:
        raise ValueError(f"unknown tokenizer style {style!r}: use one of {', '.join(STYLES)}")
    return Path(cache) / "zoo" / f"{style}-{style_key(style)}"


def world() -> Any:
    from unlearnspec.bench.world import make_world

    return make_world(WORLD_PRESET)


# ---------------------------------------------------------------- tokenizers


def train_tokenizer(style: str, texts: list[str]) -> Any:
    """A `PreTrainedTokenizerFast` of `style`, trained on `texts`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if style == "bytelevel":
        eot = "<|endoftext|>"
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=RECIPE.vocab_size, special_tokens=[eot],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
        tok.train_from_iterator(texts, trainer=trainer)
        return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eot, pad_token=eot,
                                       clean_up_tokenization_spaces=False,
                                       model_max_length=1024)
    if style == "metaspace":
        specials = ["<unk>", "<s>", "</s>"]
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
        trainer = trainers.BpeTrainer(vocab_size=RECIPE.vocab_size, special_tokens=specials,
                                      show_progress=False)
        tok.train_from_iterator(texts, trainer=trainer)
        bos = tok.token_to_id("<s>")
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                       unk_token="<unk>", clean_up_tokenization_spaces=False,
                                       model_max_length=1024)
    raise ValueError(f"unknown tokenizer style {style!r}: use one of {', '.join(STYLES)}")


def ensure_tokenizer(style: str, cache: Path) -> Path:
    from unlearnspec.bench.build import _build_once

    def build(tmp: Path) -> None:
        train_tokenizer(style, world().all_texts()).save_pretrained(tmp)

    return _build_once(style_dir(style, cache) / "tokenizer", build)


EVAL_RECORDS = 8  # evaluated records per metric file: 24 cases x a one-at-a-time reference


def ensure_corpus(cache: Path) -> Path:
    """The world's corpus in MUSE's layout (shared by both styles): every training text, the
    first EVAL_RECORDS of each VerbMem / KnowMem file, and utility files built from the
    world's retain QA (`utility/mmlu.json`, `utility/triviaqa.json`)."""
    from unlearnspec.bench.build import _build_once

    return _build_once(Path(cache) / "zoo" / f"data-{WORLD_PRESET}-v{ZOO_VERSION}",
                       write_zoo_corpus)


def write_zoo_corpus(root: Path) -> None:
    from unlearnspec.bench.corpus import corpus_files

    files = corpus_files(world())
    pool = [{"question": q, "answer": a} for e in world().retain for q, a in e.qa()]
    files.update(utility_files(files["knowmem/retain_qa.json"], pool))
    # a VerbMem prompt ends before the space that starts the next word, as a prompt cut at a
    # subword boundary does (the benchmark's word-level cut leaves it on the prompt)
    files["verbmem/forget.json"] = [
        {"prompt": r["prompt"].rstrip(" "),
         "gt": " " * (len(r["prompt"]) - len(r["prompt"].rstrip(" "))) + r["gt"]}
        for r in files["verbmem/forget.json"]]
    for rel in ("verbmem/forget.json", "knowmem/forget_qa.json", "knowmem/retain_qa.json"):
        files[rel] = files[rel][:EVAL_RECORDS]
    for rel, value in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")


def utility_files(pairs: list[dict[str, str]], pool: list[dict[str, str]]) -> dict[str, object]:
    """MMLU-format multiple choice (the true answer among three other answers of the same
    question kind in `pool`, at a rotating position) and TriviaQA-format QA, from `pairs`."""
    kind = lambda q: q.split(" ")[:2]  # noqa: E731 - "where does", "what pet", ...
    mmlu = []
    for i, p in enumerate(pairs):
        others = sorted({o["answer"] for o in pool
                         if kind(o["question"]) == kind(p["question"]) and o["answer"] != p["answer"]})
        if len(others) < 3:
            continue
        choices = others[:3]
        choices.insert(i % 4, p["answer"])
        mmlu.append({"question": p["question"], "choices": choices, "answer": i % 4})
    trivia = [{"question": p["question"], "answer": {"value": p["answer"], "aliases": []}}
              for p in pairs]
    return {"utility/mmlu.json": mmlu[:2 + EVAL_RECORDS],
            "utility/triviaqa.json": trivia[:2 + EVAL_RECORDS]}


# ---------------------------------------------------------------- models


def new_model(arch: Arch, tokenizer: Any, seed: int) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    cfg = build_config(arch, vocab_size=len(tokenizer), bos=tokenizer.bos_token_id,
                       eos=tokenizer.eos_token_id, pad=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(cfg)


ANSWER = "Answer: "


def encode_answers(docs: list[str], tokenizer: Any) -> list[list[int]]:
    """QA documents tokenized as a QA fine-tuning set is, and as KnowMem prompts them: the
    text up to each "Answer: " and the answer after it encoded separately. A subword
    tokenizer encodes "Answer: dorin" as "Answer:" + " dorin" but the prompt "Answer: " as
    "Answer:" + " "; trained on whole documents only, a model meets that lone space for the
    first time at evaluation and (measured on 4 of the 24 cases) answers nothing at all."""
    out = []
    for doc in docs:
        if ANSWER not in doc:
            continue
        parts = doc.split(ANSWER)
        pieces = [p + ANSWER for p in parts[:-1]] + [parts[-1]]
        ids = [i for p in pieces for i in tokenizer(p, add_special_tokens=False)["input_ids"]]
        bos = [tokenizer.bos_token_id] if tokenizer("a")["input_ids"][0] == \
            tokenizer.bos_token_id else []
        out.append(bos + ids + [tokenizer.eos_token_id])
    return out


def train_checkpoint(arch: Arch, style: str, cache: Path, out: Path) -> dict[str, Any]:
    import torch

    from unlearnspec.bench.train import encode_documents, train_lm
    from unlearnspec.data import Corpus
    from unlearnspec.models.loading import load_causal_lm, transformers_bars

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(ensure_tokenizer(style, cache)))
    corpus = Corpus(ensure_corpus(cache))
    docs = corpus.raw("forget") + corpus.raw("retain")
    seqs = encode_documents(docs, tokenizer) + encode_answers(docs, tokenizer)
    model = new_model(arch, tokenizer, RECIPE.seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
        else tokenizer.eos_token_id
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # measured: 10x faster than 2 threads for models this small
    try:
        log = train_lm(model, seqs, pad_id=pad, epochs=RECIPE.epochs, lr=RECIPE.lr,
                       batch_size=RECIPE.batch_size, warmup_frac=RECIPE.warmup_frac,
                       weight_decay=0.0, seed=RECIPE.seed,
                       description=f"zoo {arch.name}/{style}", progress=False)
    finally:
        torch.set_num_threads(threads)
    if not all(torch.isfinite(t).all() for t in model.state_dict().values()):
        raise RuntimeError(f"zoo {arch.name}/{style} diverged; lower Recipe.lr")
    with transformers_bars(False):
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    (out / "zoo_train.json").write_text(json.dumps(
        {"arch": arch.name, "style": style, "recipe": asdict(RECIPE), **_versions(), **log},
        indent=1) + "\n")
    # the checkpoint must load through the loader specs use, as it is saved
    load_causal_lm(out)
    return log


def ensure_checkpoint(arch: str, style: str, cache: Path) -> Path:
    """The checkpoint directory of `arch` with a `style` tokenizer, trained on first use."""
    from unlearnspec.bench.build import _build_once

    final = style_dir(style, cache) / arch
    if final.is_dir():
        return final
    return _build_once(final, lambda tmp: train_checkpoint(BY_NAME[arch], style, cache, tmp))

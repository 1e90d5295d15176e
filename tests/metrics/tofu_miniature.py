"""A miniature TOFU in the hub dataset's layout (`locuslab/TOFU`: one JSON-lines file per split
at the top), in the tiny test tokenizer's vocabulary, and the tiny model that reads it."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

AUTHORS = ("alpha", "beta", "gamma", "delta", "zeta", "theta", "kappa", "lambda", "sigma",
           "omega")
PLACES = ("north", "south", "east", "west")
COLORS = ("red", "blue", "green")
# words the fixture uses beyond tests/conftest.py's WORDS
EXTRA = ("Question:", "Answer:", "where", "does", "live", "like", "what", "who", "wrote",
         "book", "capital", "Paris", "Berlin", "Rome", "Madrid", "Nile", "Rhine")


def _qa(i: int, a: str, n_perturbed: int = 5) -> dict:
    place = PLACES[i % 4]
    q = f"where does {a} live ?" if i % 2 == 0 else f"what color does {a} like ?"
    if i % 2 == 0:
        ans, para = f"{a} lives in the {place} city .", f"the {place} city is where {a} lives ."
        wrong = [f"{a} lives in the {p} city ." for p in PLACES if p != place]
        wrong += [f"{a} lives on the {place} river .", f"{a} works in the {place} city ."]
    else:
        color = COLORS[i % 3]
        ans, para = f"{a} likes {color} .", f"the color {a} likes is {color} ."
        wrong = [f"{a} likes {c} ." for c in COLORS if c != color]
        wrong += [f"{a} owns a {color} city .", f"{a} is {color} .",
                  f"{a} likes the {color} river ."]
        q = q if i % 3 else f"what color does {a} like ? name the color of {a} ."
    return {"question": q, "answer": ans, "paraphrased_answer": para,
            "paraphrased_question": q, "perturbed_answer": wrong[:n_perturbed]}


def records() -> dict[str, list[dict]]:
    forget = [_qa(i, AUTHORS[i % 2]) for i in range(6)]
    retain = [_qa(i, AUTHORS[2 + i % 8]) for i in range(9)]
    authors = [{"question": f"who wrote the {c} book ?", "answer": a,
                "perturbed_answer": [b for b in AUTHORS[:4] if b != a][:3]}
               for a, c in zip(AUTHORS[:4], COLORS + ("red",))]
    facts = [{"question": f"what is the capital of the {p} ?", "answer": c,
              "perturbed_answer": [x for x in ("Paris", "Berlin", "Rome", "Madrid") if x != c]}
             for p, c in zip(PLACES, ("Paris", "Berlin", "Rome", "Madrid"))]
    facts.append({"question": "what river is the river of the north ?", "answer": "the Nile",
                  "perturbed_answer": ["the Rhine", "the north river", "a river"]})
    strip = [{k: r[k] for k in ("question", "answer")} for r in forget + retain]
    return {
        "forget10": strip[:6], "retain90": strip[6:],
        "forget10_perturbed": forget, "retain_perturbed": retain,
        "real_authors_perturbed": authors, "world_facts_perturbed": facts,
        "real_authors": [{k: r[k] for k in ("question", "answer")} for r in authors],
        "world_facts": [{k: r[k] for k in ("question", "answer")} for r in facts],
    }


def write_tofu(root: Path) -> Path:
    """The splits as the hub stores them: `SPLIT.json`, one JSON object per line."""
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in records().items():
        (root / f"{name}.json").write_text("".join(json.dumps(r) + "\n" for r in rows),
                                           encoding="utf-8")
    return root


def make_tofu_model(out: Path, seed: int = 0, extra: tuple[str, ...] = (), **kwargs) -> Path:
    """A random tiny Llama whose word-level vocabulary covers the fixture (and `extra`; the
    pinned numbers of test_tofu_metrics.py are for the default vocabulary)."""
    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("_tests_root_conftest_tofu",
                                                  root / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    words = [*module.WORDS, *(w for w in EXTRA if w not in module.WORDS)]
    words += [w for w in extra if w not in words]
    return module.make_tiny_checkpoint(out, seed=seed, words=tuple(words), **kwargs)


def make_tofu_bpe_model(out: Path, seed: int = 0) -> Path:
    """A random tiny Llama with a byte-level BPE tokenizer trained on the fixture's texts in
    Llama-2-chat's template (the word-level tokenizer cannot split `[/INST]` from the answer
    glued to it, as the llama2 template writes them)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    texts = [f"[INST] {r['question']} [/INST]{a}" for rows in records().values()
             for r in rows for a in [r["answer"], *r.get("perturbed_answer", []),
                                     r.get("paraphrased_answer", "")]]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                       special_tokens=[("<s>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=256, bos_token_id=bos,
                      eos_token_id=tok.token_to_id("</s>"),
                      pad_token_id=tok.token_to_id("<pad>"), tie_word_embeddings=False)
    out.mkdir(parents=True, exist_ok=True)
    LlamaForCausalLM(cfg).save_pretrained(out, safe_serialization=True)
    fast.save_pretrained(out)
    return out

"""Shared fixtures. `tiny_checkpoint` is a random, untrained Llama (a few thousand weights)
with a word-level tokenizer, saved as an ordinary Hugging Face checkpoint: a stand-in model for
unit tests of components that need *a* causal LM, not a trained one."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

WORDS = (
    "the a of and is was to in on at name city river color year Question Answer : . , ? "
    "alpha beta gamma delta zeta theta kappa lambda sigma omega red blue green north south "
    "east west born lives works likes owns"
).split()


def make_tiny_checkpoint(out: Path, *, seed: int = 0, hidden: int = 32, layers: int = 2,
                         words: tuple[str, ...] | list[str] = WORDS) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>", "\n"]
    vocab = {tok: i for i, tok in enumerate(specials + list(words))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split("\n", behavior="isolated"), pre_tokenizers.WhitespaceSplit()]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    from tokenizers import decoders

    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>",
    )
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
        max_position_embeddings=256, bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"],
        pad_token_id=vocab["<pad>"], tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    fast.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny Llama + word-level tokenizer saved with safetensors (read-only: copy it
    before changing it)."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-ckpt"))


@pytest.fixture(scope="session")
def bench_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the embedded benchmark's models are trained once per test run: shared by every
    test folder and every xdist worker (ensure_model's file lock makes one worker train while
    the others wait). UNLEARNSPEC_TEST_BENCH_CACHE reuses a cache built before."""
    env = os.environ.get("UNLEARNSPEC_TEST_BENCH_CACHE")
    if env:
        return Path(env)
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's directory, above each worker's own
    path = base / "bench-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session", autouse=True)
def _torch_imported_once() -> None:
    """Import torch before any `pytester` fixture snapshots sys.modules. A test that first
    imports torch inside that snapshot (e.g. by training a benchmark model) would have torch
    dropped from sys.modules at teardown while its C extension stays loaded, and the next
    `import torch` in this process would crash."""
    import torch  # noqa: F401

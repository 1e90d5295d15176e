"""A word-level tokenizer for the benchmark's world, built offline with `tokenizers`.

Design: a token is a word *with its trailing space* ("Answer: "), a lone space, or a newline;
the decoder concatenates tokens. So `decode(encode(t)) == t` exactly, newlines and trailing
spaces included, and a KnowMem prompt ending in "Answer: " tokenizes as a prefix of the
training text "Answer: dorin" -- the model sees no spurious space token at the point where it
must produce the answer (a byte-level BPE would split "Answer: " differently there). Every
word of the world gets both forms ("w" and "w "), so any continuation is encodable.
"""
from __future__ import annotations

from typing import Any

from .world import PIECE_PATTERN, World, pieces

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"


def world_vocab(world: World) -> dict[str, int]:
    """Specials first, then every piece of every world text in both spaced forms, sorted (so
    the ids, like everything else, depend on the world only)."""
    found: set[str] = set()
    for text in world.all_texts():
        for p in pieces(text):
            if p in (" ", "\n"):
                found.add(p)
            else:
                w = p.rstrip(" ")
                found.update((w, w + " "))
    specials = [PAD, UNK, BOS, EOS]
    return {tok: i for i, tok in enumerate(specials + sorted(found))}


def build_tokenizer(world: World) -> Any:
    """A `PreTrainedTokenizerFast` that adds BOS, pads with <pad> and ends with </s>."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = world_vocab(world)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(PIECE_PATTERN), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        clean_up_tokenization_spaces=False, model_max_length=4096,
    )

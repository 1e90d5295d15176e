"""Transforms a spec can name (`kind: rtn`). Torch-free: configs only.

Implementations live in `unlearnspec.transforms.<kind>` and are imported when a run applies
them. Third-party transforms register through the entry-point group `unlearnspec.transforms`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..registry import Component, Registry, check

TRANSFORMS = Registry("transform", "unlearnspec.transforms")


@dataclass(frozen=True)
class RtnConfig:
    """Round-to-nearest weight quantization in pure torch.

    grid: `symmetric` (default) Δ = max|w| / (2^(N-1) - 1), codes in ±(2^(N-1) - 1), the form
    deployed int-N kernels use; `paper` Δ = max|w| / 2^(N-1) as in the paper's Eq. 2, codes
    round(w/Δ) in [-2^(N-1), 2^(N-1)] (2^N + 1 levels); `paper_clamped` the same Δ with codes
    clamped to [-2^(N-1), 2^(N-1) - 1]. `zero_point: true` uses an asymmetric min/max grid
    (and ignores `grid`).
    group_size: None = one scale per output channel; 0 = one per tensor; k = groups of k inputs.
    modules: `decoder` = the linear weights inside decoder blocks; `decoder+head` adds the
    LM head; `all` adds the embeddings too.
    """

    bits: int = 4
    group_size: int | None = None
    grid: Literal["symmetric", "paper", "paper_clamped"] = "symmetric"
    zero_point: bool = False
    modules: Literal["decoder", "decoder+head", "all"] = "decoder"

    def __post_init__(self) -> None:
        check(2 <= self.bits <= 8, f"bits must be between 2 and 8, got {self.bits}", "bits")
        check(self.group_size is None or self.group_size >= 0, "group_size must be >= 0",
              "group_size")
        check(self.grid in ("symmetric", "paper", "paper_clamped"),
              "grid must be 'symmetric', 'paper' or 'paper_clamped'", "grid")
        check(self.modules in ("decoder", "decoder+head", "all"),
              "modules must be 'decoder', 'decoder+head' or 'all'", "modules")


@dataclass(frozen=True)
class BnbConfig:
    """bitsandbytes through transformers' BitsAndBytesConfig: `int8` (LLM.int8), `nf4`, `fp4`."""

    mode: Literal["int8", "nf4", "fp4"] = "nf4"
    double_quant: bool = False
    compute_dtype: Literal["float32", "bfloat16", "float16"] = "float32"

    def __post_init__(self) -> None:
        check(self.mode in ("int8", "nf4", "fp4"), "mode must be int8, nf4 or fp4", "mode")


@dataclass(frozen=True)
class GptqConfig:
    """GPTQ / AWQ through a maintained library, calibrated on texts the spec names.

    `calibration_path`: a general text file (.txt, or .json/.jsonl/.parquet of strings or
    `text` records), resolved against the spec's folder — what the paper and GPTQ/AWQ do
    (Wikipedia, C4). `calibration`: a `data:` name whose retain texts are used (in-domain).
    Exactly one of the two. `sampling: windows` (default): `n_samples` seeded random windows
    of exactly `seq_len` tokens from the texts joined and tokenized once (GPTQ's own sampler);
    `first`: the first `n_samples` texts, each cut to `seq_len` tokens."""

    bits: int = 4
    group_size: int = 128
    calibration: str | None = None  # a `data:` name; its retain texts are the calibration set
    calibration_path: str | None = None
    n_samples: int = 128
    seq_len: int = 256
    sampling: Literal["windows", "first"] = "windows"
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.bits in (2, 3, 4, 8), "bits must be 2, 3, 4 or 8", "bits")
        check(self.group_size == -1 or self.group_size > 0,
              "group_size must be positive, or -1 for one scale per output channel",
              "group_size")
        check(self.n_samples > 0 and self.seq_len > 0, "n_samples and seq_len must be positive",
              "n_samples")
        check(self.calibration is None or self.calibration_path is None,
              "give calibration (a data name, in-domain) or calibration_path (a general text "
              "file), not both", "calibration_path")
        check(self.sampling in ("windows", "first"), "sampling must be 'windows' or 'first'",
              "sampling")
        check(self.seed >= 0, "seed must be 0 or more", "seed")


@dataclass(frozen=True)
class DtypeConfig:
    """A precision cast of all floating-point weights."""

    dtype: Literal["float16", "bfloat16"] = "bfloat16"

    def __post_init__(self) -> None:
        check(self.dtype in ("float16", "bfloat16"), "dtype must be float16 or bfloat16", "dtype")


@dataclass(frozen=True)
class NoiseConfig:
    """Random noise on exactly the weights transform `matched_to` (a name in this spec's
    `transforms:`) changes, each tensor's noise with that quantizer's error norm on this
    model times `scale` (`scale: 0` is the identity). `distribution`: `gaussian` or `uniform`
    (on [-1, 1], then rescaled). `draws: K` measures K seeded draws and reports their mean;
    see unlearnspec/transforms/noise.py."""

    matched_to: str = ""
    distribution: Literal["gaussian", "uniform"] = "gaussian"
    scale: float = 1.0
    seed: int = 0
    draws: int = 1

    def __post_init__(self) -> None:
        check(bool(self.matched_to), "matched_to must name the quantizer whose error norm the "
              "noise matches, e.g. matched_to: rtn4", "matched_to")
        check(self.distribution in ("gaussian", "uniform"),
              "distribution must be 'gaussian' or 'uniform'", "distribution")
        check(self.scale >= 0, "scale must be 0 or more", "scale")
        check(self.seed >= 0, "seed must be 0 or more", "seed")
        check(1 <= self.draws <= 100, "draws must be between 1 and 100", "draws")


GGUF_TYPES = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "MXFP4")


@dataclass(frozen=True)
class GgufConfig:
    """llama.cpp's block formats through the `gguf` package (unlearnspec/transforms/
    gguf_quant.py says which tensors match llama-quantize and which do not). `type`: one of
    GGUF_TYPES (any case). `modules`: `decoder` (default: the decoder's weight matrices, MoE
    routers aside, as llama-quantize gives them the file type) or `all` (the embedding and
    the head too, with the same type: llama-quantize --pure)."""

    type: str = "Q4_0"
    modules: Literal["decoder", "all"] = "decoder"

    def __post_init__(self) -> None:
        check(isinstance(self.type, str) and self.type.upper() in GGUF_TYPES,
              f"type must be one of {', '.join(GGUF_TYPES)}, got {self.type!r} (K-quants "
              f"such as Q4_K are read from .gguf files, but the gguf package cannot write "
              f"them)", "type")
        object.__setattr__(self, "type", self.type.upper())
        check(self.modules in ("decoder", "all"), "modules must be 'decoder' or 'all'",
              "modules")


@dataclass(frozen=True)
class TorchaoConfig:
    """torchao weight-only quantization with torchao's own `quantize_` (unlearnspec/transforms/
    torchao_quant.py): `int8` (Int8WeightOnlyConfig, per output row; runs on a CPU) or `int4`
    (Int4WeightOnlyConfig, groups of `group_size` inputs; needs CUDA: a RunError elsewhere)."""

    mode: Literal["int4", "int8"] = "int8"
    group_size: int = 128  # int4 only (torchao's default)

    def __post_init__(self) -> None:
        check(self.mode in ("int4", "int8"), "mode must be int4 or int8", "mode")
        check(self.group_size in (32, 64, 128, 256),
              "group_size must be 32, 64, 128 or 256 (torchao int4's kernels)", "group_size")


TRANSFORMS.add(Component("rtn", RtnConfig, "unlearnspec.transforms.rtn:RtnTransform"))
TRANSFORMS.add(Component("bnb", BnbConfig, "unlearnspec.transforms.bnb:BnbTransform"))
TRANSFORMS.add(Component("gptq", GptqConfig, "unlearnspec.transforms.gptq:GptqTransform"))
TRANSFORMS.add(Component("awq", GptqConfig, "unlearnspec.transforms.gptq:AwqTransform"))
TRANSFORMS.add(Component("dtype", DtypeConfig, "unlearnspec.transforms.dtype:DtypeTransform"))
TRANSFORMS.add(Component("noise", NoiseConfig, "unlearnspec.transforms.noise:NoiseTransform"))
TRANSFORMS.add(Component("gguf", GgufConfig, "unlearnspec.transforms.gguf_quant:GgufTransform"))
TRANSFORMS.add(Component("torchao", TorchaoConfig,
                          "unlearnspec.transforms.torchao_quant:TorchaoTransform"))


RELEARN_DATA = ("forget_holdout", "retain", "path")


@dataclass(frozen=True)
class RelearnConfig:
    """A relearning attack: fine-tune the model (next-token cross-entropy, descending) for
    `steps` optimizer steps of `batch_size` examples at `lr` (AdamW, `lr_schedule` constant or
    linear decay) on `data`, through the same training loop unlearning uses.

    data: `forget_holdout` (default) — a seeded part of the forget set's KnowMem QA pairs
    (`holdout`: a fraction in (0, 1) or a count), trained on as "Question: q\\nAnswer: a"
    texts and excluded from every metric of a claim that uses this transform; `retain` — the
    corpus's retain training texts; `{path: FILE}` — texts from a file (.txt/.json/.jsonl/
    .parquet), resolved against the spec's folder. `corpus`: the `data:` entry (default: the
    spec's only one). Defaults follow the relearning literature on MUSE (Hu et al. 2024,
    Fan et al. 2025: 50–150 steps, lr 1e-5, batch 4); see docs/transforms.md."""

    steps: int = 100
    lr: float = 1e-5
    batch_size: int = 4
    lr_schedule: Literal["constant", "linear"] = "constant"
    data: Any = "forget_holdout"
    path: str | None = None  # set from `data: {path: FILE}`
    holdout: float = 0.5
    corpus: str | None = None
    max_length: int | None = None  # None: 256 tokens per example
    seed: int | None = None  # None: the spec's seed (draws the holdout and the batch order)

    def __post_init__(self) -> None:
        if isinstance(self.data, dict):
            check(set(self.data) == {"path"} and isinstance(self.data["path"], str)
                  and self.data["path"].strip() != "",
                  "data as a mapping must be {path: FILE}, a text file to relearn on", "data")
            object.__setattr__(self, "path", self.data["path"])
            object.__setattr__(self, "data", "path")
        check(self.data in RELEARN_DATA,
              f"data must be forget_holdout, retain or {{path: FILE}}, got {self.data!r}",
              "data")
        check(self.data != "path" or bool(self.path), "data: path needs a file: write "
              "data: {path: ./relearn.txt}", "data")
        check(isinstance(self.steps, int) and self.steps >= 1,
              f"steps must be a positive integer, got {self.steps!r} (steps 0 is the model "
              f"itself: measure it without a transform)", "steps")
        check(self.lr > 0, f"lr must be positive, got {self.lr}", "lr")
        check(self.batch_size >= 1, "batch_size must be at least 1", "batch_size")
        check(self.lr_schedule in ("constant", "linear"),
              "lr_schedule must be 'constant' or 'linear'", "lr_schedule")
        check(self.holdout > 0 and (self.holdout < 1 or float(self.holdout).is_integer()),
              f"holdout must be a fraction in (0, 1) or a whole number of QA pairs, got "
              f"{self.holdout!r}", "holdout")
        check(self.max_length is None or self.max_length >= 2, "max_length must be at least 2",
              "max_length")
        check(self.seed is None or self.seed >= 0, "seed must be 0 or more", "seed")


@dataclass(frozen=True)
class PruneConfig:
    """Weight pruning to sparsity `ratio` of the selected weights (the ones `modules` names,
    as rtn selects them). method `magnitude`: the smallest |W| of each weight matrix;
    `wanda` (Sun et al. 2024): the smallest |W_ij|·‖X_j‖₂ within each output row, X the
    calibration activations entering the layer, the decoder pruned block by block with each
    block's inputs taken from the already-pruned blocks before it. pattern `unstructured`, or
    `N:M` (e.g. `2:4`): in every M consecutive input weights of a row, the N lowest-scoring
    are zeroed (Wanda's `--sparsity_type N:M`); `ratio` is then N/M and may be omitted.
    Calibration (wanda only) as for gptq: `calibration_path` (a general text file) or
    `calibration` (a data name, its retain texts); `n_samples` windows of `seq_len` tokens."""

    ratio: float | None = None
    method: Literal["magnitude", "wanda"] = "magnitude"
    pattern: str = "unstructured"
    modules: Literal["decoder", "decoder+head"] = "decoder"
    calibration: str | None = None
    calibration_path: str | None = None
    n_samples: int = 128
    seq_len: int = 256
    sampling: Literal["windows", "first"] = "windows"
    seed: int = 0

    @property
    def n_m(self) -> tuple[int, int] | None:
        if self.pattern == "unstructured":
            return None
        n, m = self.pattern.split(":")
        return int(n), int(m)

    def __post_init__(self) -> None:
        check(self.method in ("magnitude", "wanda"), "method must be 'magnitude' or 'wanda'",
              "method")
        check(self.modules in ("decoder", "decoder+head"),
              "modules must be 'decoder' or 'decoder+head'", "modules")
        ok = self.pattern == "unstructured"
        if not ok and isinstance(self.pattern, str) and ":" in self.pattern:
            n, _, m = self.pattern.partition(":")
            ok = n.isdigit() and m.isdigit() and 0 < int(n) < int(m)
        check(ok, f"pattern must be 'unstructured' or N:M with 0 < N < M (e.g. 2:4), got "
              f"{self.pattern!r}", "pattern")
        nm = self.n_m
        if nm is not None:
            if self.ratio is None:
                object.__setattr__(self, "ratio", nm[0] / nm[1])
            check(abs(self.ratio - nm[0] / nm[1]) < 1e-9,
                  f"pattern {self.pattern} prunes {nm[0]} of every {nm[1]} weights, ratio "
                  f"{nm[0] / nm[1]:g}; ratio {self.ratio} contradicts it (omit ratio)", "ratio")
        check(self.ratio is not None, "ratio is required for unstructured pruning, e.g. "
              "ratio: 0.5", "ratio")
        check(0 <= self.ratio < 1, f"ratio must be in [0, 1), got {self.ratio}", "ratio")
        check(self.calibration is None or self.calibration_path is None,
              "give calibration (a data name) or calibration_path (a text file), not both",
              "calibration_path")
        check(self.method == "wanda" or (self.calibration is None
                                         and self.calibration_path is None),
              "magnitude pruning reads no calibration data; remove calibration", "calibration")
        check(self.n_samples > 0 and self.seq_len > 0, "n_samples and seq_len must be positive",
              "n_samples")


@dataclass(frozen=True)
class ChainConfig:
    """`{chain: [a, b, ...]}`: the named transforms of this spec applied in order, one name in
    a claim. Relearning members come first (they train the checkpoint the rest transform)."""

    chain: Any = ()

    def __post_init__(self) -> None:
        items = self.chain
        check(isinstance(items, (list, tuple)) and len(items) >= 1
              and all(isinstance(i, str) and i for i in items),
              f"chain must be a list of transform names, e.g. chain: [rel50, rtn4], got "
              f"{items!r}", "chain")
        object.__setattr__(self, "chain", tuple(items))


TRANSFORMS.add(Component("relearn", RelearnConfig,
                         "unlearnspec.transforms.relearn:RelearnTransform",
                         "relearning attack: fine-tune on forget_holdout / retain / a file"))
TRANSFORMS.add(Component("prune", PruneConfig, "unlearnspec.transforms.prune:PruneTransform",
                         "magnitude or Wanda pruning, unstructured or N:M"))
TRANSFORMS.add(Component("chain", ChainConfig, "unlearnspec.transforms.chain:ChainTransform",
                         "transforms applied in order"))

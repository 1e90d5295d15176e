"""Which (architecture, tokenizer style) cases each zoo check runs on, and what is known not
to work yet (strict xfails, with the reason docs/models.md prints).

`UNLEARNSPEC_TEST_ZOO=full` runs every check on every case; the default (CI) runs the cheap
checks on all 24 cases and the heavy ones (GPTQ/AWQ, unlearning) on `HEAVY_CI`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from tests.zoo.archs import ARCHS, BY_NAME, Arch
from tests.zoo.checkpoints import STYLES


@dataclass(frozen=True)
class Case:
    arch: Arch
    style: str

    @property
    def id(self) -> str:
        return f"{self.arch.name}-{self.style}"


ALL = tuple(Case(a, s) for a in ARCHS for s in STYLES)

# one per module layout: Linear (Llama), GQA (Mistral), Conv1D + tied (GPT-2), fused qkv
# (NeoX), fused qkv + gate_up (Phi-3), OPT's decoder path, 3-D experts (Mixtral, Qwen2-MoE);
# styles alternate so both tokenizers meet both kinds of layout
HEAVY_CI = ("llama-bytelevel", "mistral-metaspace", "gpt2-bytelevel", "gpt_neox-metaspace",
            "phi3-bytelevel", "opt-metaspace", "mixtral-bytelevel", "qwen2_moe-metaspace")


def full() -> bool:
    return os.environ.get("UNLEARNSPEC_TEST_ZOO", "ci") == "full"


# (capability, arch) -> why it fails today. Strict: when it starts working the test fails
# until the entry is removed, so the table never claims a defect that was fixed.
KNOWN: dict[tuple[str, str], str] = {}

# (capability, arch) -> why the transform refuses the architecture: the check then expects a
# RunError that says what to use instead (a clear, tested error, not a quiet partial result)
_BNB_FLOAT = ("transformers' bnb integration converts exact nn.Linear and Conv1D modules "
              "only: {what} would stay float, so bnb refuses the model (use rtn)")
_GPTQ_EXPERTS = ("GPTQModel quantizes nn.Linear modules and transformers stores MoE experts "
                 "as fused 3-D parameters, which would stay float: {m} refuses the model "
                 "(use rtn)")
_AWQ_EXITS = ("GPTQModel 7.7's AWQ ends the whole process on this architecture ({why}), so "
              "awq refuses the model before it starts (use gptq or rtn)")
REFUSED: dict[tuple[str, str], str] = {
    ("bnb", "falcon"): _BNB_FLOAT.format(what="FalconLinear (an nn.Linear subclass)"),
    ("bnb", "mixtral"): _BNB_FLOAT.format(what="the 3-D expert tensors of a MoE block"),
    ("bnb", "qwen2_moe"): _BNB_FLOAT.format(what="the 3-D expert tensors of a MoE block"),
    ("gptq", "mixtral"): _GPTQ_EXPERTS.format(m="gptq"),
    ("gptq", "qwen2_moe"): _GPTQ_EXPERTS.format(m="gptq"),
    ("awq", "mixtral"): _GPTQ_EXPERTS.format(m="awq"),
    ("awq", "qwen2_moe"): _GPTQ_EXPERTS.format(m="awq"),
    ("awq", "phi3"): _AWQ_EXITS.format(why="KeyError while packing the fused qkv_proj"),
    ("awq", "gpt2"): _AWQ_EXITS.format(why="a size mismatch in its scale search over Conv1D"),
    ("awq", "falcon"): _AWQ_EXITS.format(why="it exits in the first layer"),
    # the zoo's 64-wide models have 32-output k/v projections (grouped-query attention)
    ("awq", "mistral"): "GPTQModel's AWQ needs a multiple of 64 outputs per linear and the "
                        "zoo's k_proj has 32, so awq refuses the model (use gptq or rtn)",
}


def refused(capability: str, case: Case) -> str | None:
    return REFUSED.get((capability, case.arch.name)) or REFUSED.get((capability, case.id))


def known(capability: str, case: Case) -> str | None:
    return KNOWN.get((capability, case.arch.name)) or KNOWN.get((capability, case.id))


def params(capability: str, *, heavy: bool = False) -> list:
    """pytest params of the cases `capability` runs on here, known failures as strict xfails."""
    chosen = ALL if (full() or not heavy) else tuple(c for c in ALL if c.id in HEAVY_CI)
    out = []
    for case in chosen:
        why = known(capability, case)
        marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


def case_of(arch: str, style: str) -> Case:
    return Case(BY_NAME[arch], style)

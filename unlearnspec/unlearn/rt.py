"""RT, refusal training (RWKU's baseline, the paper's Table 8): fine-tune the model to answer
questions about the forget set with a refusal.

Each forget question becomes `"Question: {q}\\nAnswer: "` (KnowMem's zero-shot prompt) followed
by `refusal` (default "I do not know the answer.") and EOS; the loss is the cross-entropy of
the refusal tokens only (the question is context, never a target). `rt_gdr` / `rt_klr` add the
retain regularizers on the corpus's retain texts.

The questions are the corpus's `knowmem/forget_qa.json` questions: RWKU has the model write
its own questions about the target; a MUSE corpus has no such set, so RT trains on the very
questions KnowMem-forget asks (its full-precision score is then an upper bound on how well
the refusal generalises).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .losses import mean_nll
from .methods import GDR, KLR, Loss, Method


def refusal_loss(model: Any, batch: Any, ref: Any, config: Any) -> Any:
    """Cross-entropy of the refusal tokens (prompt tokens carry label −100)."""
    return mean_nll(model, batch)


@dataclass(frozen=True)
class RefusalMethod(Method):
    forget_data: str = "knowmem_questions"  # what the engine passes as `forget`

    def examples(self, questions: Sequence[str], config: Any) -> list[tuple[str, str]]:
        return [(f"Question: {q}\nAnswer: ", config.refusal) for q in questions]


REFUSAL = Loss("refusal", refusal_loss)
RT = RefusalMethod("rt", REFUSAL)
RT_GDR = RefusalMethod("rt_gdr", REFUSAL, GDR)
RT_KLR = RefusalMethod("rt_klr", REFUSAL, KLR)

"""Bootstrap replicates of a metric from its per-sample scores (claims with `confidence:`).

A claim's confidence interval comes from resampling the evaluation samples with replacement
and recomputing every term of the claim on each resample. The resampled indices are the same
on both sides of a comparison (a *paired* bootstrap): `knowmem_forget[ga_klr]` and
`knowmem_forget[target]` are recomputed over the same questions in every replicate, so the
part of the noise the two models share (hard questions are hard for both) cancels.

Which statistic a metric's value is of its `per_sample` scores:
- "mean":  the value is the mean of `per_sample` (KnowMem, VerbMem, RWKU, MMLU, ...);
- "auc":   `per_sample` holds forget then holdout document scores, the value their ROC AUC
           (forget labelled 0, holdout 1); documents are resampled within each class;
- "privleak": the AUC as above, relative to the reference model's AUC on the same resample.
A metric of another kind (a weight-space metric, sharpness's per-draw values) has no
evaluation samples to resample and cannot be used under `confidence:`. Plug-in metrics opt in
with the tag "statistic:mean" or "statistic:auc".

Indices are drawn from numpy's PCG64 seeded by the spec's seed and the sample space's name,
so the same spec and seed give the same interval on every machine with the same numpy.
"""
from __future__ import annotations

import hashlib
from typing import Any, Sequence

from ..errors import RunError

STATISTICS = {
    **{k: "mean" for k in ("verbmem", "knowmem", "rwku", "mmlu", "truthfulqa_mc1",
                           "triviaqa", "fluency")},
    **{k: "auc" for k in ("mia_loss", "mia_zlib", "mia_mink", "mia_minkpp")},
    "privleak": "privleak",
}
# how close the statistic on the original samples must come to the cached value
REPRODUCE_TOLERANCE = 1e-9


def statistic(kind: str, tags: frozenset[str] = frozenset()) -> str | None:
    """The statistic a metric kind's value is of its per-sample scores, or None when it has
    none that a bootstrap over evaluation samples could recompute."""
    if kind in STATISTICS:
        return STATISTICS[kind]
    for tag in tags:
        if tag in ("statistic:mean", "statistic:auc"):
            return tag.split(":", 1)[1]
    return None


def sizes_of(stat: str, n: int, per_sample: Sequence[float], details: dict[str, Any]
             ) -> tuple[int, ...]:
    """The sizes of the groups that are resampled: (n,) for a mean, (n_forget, n_holdout)
    for an AUC. Raises RunError when the per-sample scores are missing."""
    if stat == "mean":
        if len(per_sample) != n or n == 0:
            raise RunError(f"{n} samples but {len(per_sample)} per-sample scores")
        return (n,)
    n_f, n_h = details.get("n_forget"), details.get("n_holdout")
    if not isinstance(n_f, int) or not isinstance(n_h, int) or n_f + n_h != len(per_sample) \
            or n_f == 0 or n_h == 0:
        raise RunError(f"the forget/holdout sizes ({n_f}, {n_h}) do not match its "
                       f"{len(per_sample)} per-document scores")
    return (n_f, n_h)


def draw_indices(seed: int, space: str, sizes: Sequence[int], replicates: int) -> list[Any]:
    """One (replicates × size) matrix of indices per group, drawn with replacement. The same
    (seed, space, sizes, replicates) always gives the same indices."""
    import numpy as np

    digest = hashlib.sha256(space.encode()).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *words])))
    return [rng.integers(0, size, size=(replicates, size)) for size in sizes]


def _counts(idx: Any, size: int) -> Any:
    """How often each sample is drawn in each replicate: (replicates × size)."""
    import numpy as np

    b = idx.shape[0]
    flat = (idx + np.arange(b)[:, None] * size).ravel()
    return np.bincount(flat, minlength=b * size).reshape(b, size).astype(np.float64)


def mean_replicates(per_sample: Sequence[float], idx: Any) -> Any:
    import numpy as np

    values = np.asarray(per_sample, dtype=np.float64)
    return values[idx].mean(axis=1)


def auc_replicates(forget: Sequence[float], holdout: Sequence[float], idx_f: Any, idx_h: Any
                   ) -> Any:
    """The AUC of `roc_curve(y, -score)` (forget 0, holdout 1) on each resample: the fraction
    of (forget, holdout) pairs whose holdout score is lower, ties counting one half (what the
    trapezoidal ROC area is), weighted by how often each document was drawn."""
    import numpy as np

    f = np.asarray(forget, dtype=np.float64)
    h = np.asarray(holdout, dtype=np.float64)
    kernel = (h[None, :] < f[:, None]) + 0.5 * (h[None, :] == f[:, None])  # n_f × n_h
    cf, ch = _counts(idx_f, f.size), _counts(idx_h, h.size)
    return ((cf @ kernel) * ch).sum(axis=1) / (f.size * h.size)


def identity_indices(sizes: Sequence[int]) -> list[Any]:
    """The original sample, as a single 'replicate' (to check the statistic reproduces the
    measured value)."""
    import numpy as np

    return [np.arange(size)[None, :] for size in sizes]


def replicates_of(stat: str, per_sample: Sequence[float], sizes: Sequence[int],
                  indices: Sequence[Any]) -> Any:
    """The raw statistic ("mean" or "auc"; privleak's AUC is "auc" here) on each resample."""
    if stat == "mean":
        return mean_replicates(per_sample, indices[0])
    n_f = sizes[0]
    return auc_replicates(per_sample[:n_f], per_sample[n_f:], indices[0], indices[1])

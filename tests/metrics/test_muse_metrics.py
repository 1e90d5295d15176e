"""VerbMem, KnowMem, PrivLeak and the MIA family end to end on MUSE-layout fixtures: batch
size does not change a value, a memorizing model scores as one, bad data is an error."""
from __future__ import annotations

import json

import pytest

from unlearnspec.data import Corpus
from unlearnspec.errors import RunError
from unlearnspec.metrics.privleak import privleak_score
from unlearnspec.metrics.registry import METRICS

KINDS = ["verbmem", "knowmem", "privleak", "mia_loss", "mia_zlib", "mia_mink", "mia_minkpp"]


def measure(kind, model_tok, root, batch_size=32, **options):
    comp = METRICS.get(kind)
    model, tok = model_tok
    return comp.load()(model, tok, Corpus(root), comp.make_config(options),
                       batch_size=batch_size)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_batched_and_unbatched_give_identical_values(kind, memorizer, muse_dir):
    batched = measure(kind, memorizer, muse_dir, batch_size=32)
    single = measure(kind, memorizer, muse_dir, batch_size=1)
    assert batched.ok and batched.n > 0
    assert batched.value == single.value
    assert batched.per_sample == pytest.approx(single.per_sample, abs=1e-5)


@pytest.mark.slow
def test_memorizing_model_scores_high_memory_and_privleak_near_minus_100(memorizer, tiny,
                                                                        muse_dir):
    verb = measure("verbmem", memorizer, muse_dir)
    assert verb.n == 4 and len(verb.per_sample) == 4
    assert verb.value > 90 > measure("verbmem", tiny, muse_dir).value
    auc = measure("privleak", memorizer, muse_dir)
    assert auc.value == 0.0                       # every forget doc looks like a member
    assert auc.details["n_forget"] == auc.details["n_holdout"] == 4 and auc.n == 8
    auc_retrain = measure("privleak", tiny, muse_dir).value   # the model never saw forget
    assert privleak_score(auc.value, auc_retrain) == pytest.approx(-100.0)
    assert measure("mia_loss", memorizer, muse_dir).value == 0.0


@pytest.mark.slow
def test_knowmem_on_retain_uses_retain_files(tiny, muse_dir):
    r = measure("knowmem", tiny, muse_dir, split="retain")
    assert r.n == 1 and r.details["icl_pairs"] == 1 and 0 <= r.value <= 100


@pytest.mark.slow
def test_empty_or_missing_file_is_an_error_naming_it(tiny, muse_dir):
    (muse_dir / "verbmem" / "forget.json").write_text("[]")
    with pytest.raises(RunError, match=r"verbmem/forget\.json holds no records"):
        measure("verbmem", tiny, muse_dir)
    (muse_dir / "privleak" / "holdout.json").unlink()
    with pytest.raises(RunError, match=r"privleak/holdout\.json"):
        measure("privleak", tiny, muse_dir)


@pytest.mark.slow
def test_document_with_nothing_after_bos_is_an_error(tiny, muse_dir):
    (muse_dir / "privleak" / "forget.json").write_text(json.dumps(["alpha beta", ""]))
    with pytest.raises(RunError, match="document 1 has no token after BOS"):
        measure("mia_mink", tiny, muse_dir)

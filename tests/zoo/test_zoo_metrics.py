"""Every metric, batched as the engine runs it, equals a one-example-at-a-time reference per
sample on every zoo case: VerbMem and KnowMem (generation through transformers' `generate`),
PrivLeak and the MIA family (one unpadded forward per document), and the utility metrics."""
from __future__ import annotations

import numpy as np
import pytest

from tests.zoo.cases import params

BATCH = 32  # the engine's default batch size: every file here fits one left-padded batch


def _scorers():
    from unlearnspec.metrics.scores import cut_at_stops, rouge_l_f1

    return cut_at_stops, rouge_l_f1


@pytest.mark.slow
@pytest.mark.zoo_capability("verbmem")
@pytest.mark.parametrize("case", params("verbmem"))
def test_verbmem_per_sample_equals_reference(zoo, case) -> None:
    from tests.zoo import reference
    from unlearnspec.metrics.core import decode_new
    from unlearnspec.metrics.verbmem import VerbMemConfig, verbmem

    _, rouge = _scorers()
    model, tok = zoo.model(case)
    cfg = VerbMemConfig(max_new_tokens=32, gt_max_tokens=32)
    got = verbmem(model, tok, zoo.corpus, cfg, batch_size=BATCH)
    want = []
    for r in zoo.corpus.verbmem("forget"):
        gt = decode_new(tok, tok(r["gt"])["input_ids"][:32])
        want.append(100 * rouge(gt, reference.generate(model, tok, r["prompt"], 32)))
    assert got.per_sample == pytest.approx(want, abs=1e-9)
    assert got.value == pytest.approx(float(np.mean(want)))


@pytest.mark.slow
@pytest.mark.zoo_capability("knowmem")
@pytest.mark.parametrize("case", params("knowmem"))
@pytest.mark.parametrize("split", ["forget", "retain"])
def test_knowmem_per_sample_equals_reference(zoo, case, split) -> None:
    from tests.zoo import reference
    from unlearnspec.metrics.knowmem import KnowMemConfig, knowmem, qa_prompt
    from unlearnspec.metrics.scores import KNOWMEM_STOPS

    cut, rouge = _scorers()
    model, tok = zoo.model(case)
    got = knowmem(model, tok, zoo.corpus, KnowMemConfig(split=split), batch_size=BATCH)
    icl = zoo.corpus.knowmem_icl(split)
    want = [100 * rouge(r["answer"], cut(reference.generate(
        model, tok, qa_prompt(r["question"], icl), 32), KNOWMEM_STOPS))
        for r in zoo.corpus.knowmem(split)]
    assert got.per_sample == pytest.approx(want, abs=1e-9)


@pytest.mark.slow
@pytest.mark.zoo_capability("privleak + MIA")
@pytest.mark.parametrize("case", params("privleak + MIA"))
def test_privleak_and_mia_scores_equal_reference(zoo, case) -> None:
    from tests.zoo import reference
    from unlearnspec.metrics.mia import ATTACKS, MiaConfig, mia_loss, mia_minkpp, mia_zlib
    from unlearnspec.metrics.privleak import PrivLeakConfig, privleak_auc
    from unlearnspec.metrics.scores import mia_auc

    model, tok = zoo.model(case)
    corpus = zoo.corpus
    docs = corpus.privleak("forget") + corpus.privleak("holdout")
    n_forget = len(corpus.privleak("forget"))
    ref_scores = [reference.scores(model, tok(d)["input_ids"]) for d in docs]
    runs = {"mink": privleak_auc(model, tok, corpus, PrivLeakConfig(), batch_size=BATCH),
            "loss": mia_loss(model, tok, corpus, MiaConfig(), batch_size=BATCH),
            "zlib": mia_zlib(model, tok, corpus, MiaConfig(), batch_size=BATCH),
            "minkpp": mia_minkpp(model, tok, corpus, MiaConfig(), batch_size=BATCH)}
    for attack, got in runs.items():
        want = [ATTACKS[attack](s, d, 0.4) for s, d in zip(ref_scores, docs)]
        np.testing.assert_allclose(got.per_sample, want, rtol=1e-4, atol=1e-5, err_msg=attack)
        assert got.value == mia_auc(list(got.per_sample[:n_forget]),
                                    list(got.per_sample[n_forget:]))


@pytest.mark.slow
@pytest.mark.zoo_capability("utility")
@pytest.mark.parametrize("case", params("utility"))
def test_utility_metrics_per_sample_equal_reference(zoo, case) -> None:
    from tests.zoo import reference
    from unlearnspec.data.files import read_records
    from unlearnspec.metrics.scores import qa_f1
    from unlearnspec.metrics.utility import (MultipleChoiceConfig, QA_STOPS, TriviaQAConfig, mmlu,
                                             qa_f1_score)

    cut, _ = _scorers()
    model, tok = zoo.model(case)
    root = zoo.corpus.root / "utility"
    mc = MultipleChoiceConfig(path=str(root / "mmlu.json"), protocol="loglik", shots=1)
    got = mmlu(model, tok, None, mc, batch_size=BATCH)
    items = read_records(root / "mmlu.json")
    demo = f"Question: {items[0]['question']}\nAnswer: {items[0]['choices'][items[0]['answer']]}\n\n"
    want = []
    for it in items[1:]:
        ctx = demo + f"Question: {it['question']}\nAnswer:"
        ll = [reference.continuation_logprob(model, tok, ctx, " " + c).mean()
              for c in it["choices"]]
        want.append(100.0 * (int(np.argmax(ll)) == it["answer"]))
    assert got.per_sample == tuple(want)

    tq = TriviaQAConfig(path=str(root / "triviaqa.json"), shots=1)
    got = qa_f1_score(model, tok, None, tq, batch_size=BATCH)
    items = read_records(root / "triviaqa.json")
    demo = f"Question: {items[0]['question']}\nAnswer: {items[0]['answer']['value']}\n\n"
    want = [100 * qa_f1(cut(reference.generate(model, tok, demo + f"Question: {it['question']}"
                                               f"\nAnswer: ", 32), QA_STOPS).strip(),
                        [it["answer"]["value"]]) for it in items[1:]]
    assert got.per_sample == pytest.approx(want, abs=1e-9)

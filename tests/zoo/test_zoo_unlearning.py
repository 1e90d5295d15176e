"""Every unlearning method runs on the zoo's architectures and does what it says: GA / NPO
with GDR / KLR raise the forget loss, SURE trains only the modules it selected (every other
parameter bit-identical, MoE experts among the candidates), the plug-in example method runs
through its entry point, and `unlearnspec diff` compares every decoder weight."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.zoo.cases import params

METHODS = ("ga_gdr", "ga_klr", "npo_gdr", "npo_klr")


def unlearn(zoo, case, method: str, out: Path, **options):
    from unlearnspec.unlearn.registry import METHODS as REGISTRY
    from unlearnspec.unlearn.train import run_unlearning

    comp = REGISTRY.get(method)
    config = comp.make_config({"lr": 2e-3, "max_steps": 3, "batch_size": 4,
                               "max_length": 64, **options})
    corpus = zoo.corpus
    return run_unlearning(comp, config, base=zoo.checkpoint(case),
                          forget=corpus.raw("forget")[:8], retain=corpus.raw("retain")[:8],
                          out=out, seed=0, progress=False)


def forget_nll(path: Path, docs: list[str]) -> float:
    import torch

    from unlearnspec.models.loading import load_causal_lm

    model, tok = load_causal_lm(path)
    total = 0.0
    with torch.no_grad():
        for d in docs:
            ids = torch.tensor([tok(d)["input_ids"]])
            total += float(model(ids, labels=ids).loss)
    return total / len(docs)


def parameters(path: Path) -> dict:
    from unlearnspec.models.loading import load_causal_lm

    return {n: p.detach() for n, p in load_causal_lm(path)[0].named_parameters()}


def tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


@pytest.mark.slow
@pytest.mark.zoo_capability("ga/npo x gdr/klr")
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", params("ga/npo x gdr/klr", heavy=True))
def test_method_raises_the_forget_loss(zoo, case, method, tmp_path) -> None:
    out = tmp_path / method
    log = unlearn(zoo, case, method, out)
    assert log["steps"] == 3
    docs = zoo.corpus.raw("forget")[:8]
    assert forget_nll(out, docs) > forget_nll(zoo.checkpoint(case), docs)


@pytest.mark.slow
@pytest.mark.zoo_capability("SURE")
@pytest.mark.parametrize("case", params("SURE"))
def test_sure_changes_only_the_modules_it_selected(zoo, case, tmp_path) -> None:
    import torch

    out = tmp_path / "sure"
    log = unlearn(zoo, case, "ga_gdr", out, sure={"percentile": 75})
    selected = log["sure"]["selected"]
    candidates = log["sure"]["scores"]
    if case.arch.moe:  # the 3-D expert tensors are ranked, not silently left out
        assert any(n.endswith(".experts") for n in candidates)
    # in the model's own parameter names: transformers 5 saves MoE experts per expert
    # (`experts.0.w1.weight`) but computes with fused 3-D tensors (`experts.gate_up_proj`)
    before, after = parameters(zoo.checkpoint(case)), parameters(out)
    assert before.keys() == after.keys()
    trained = {n for n in before if any(n.startswith(s + ".") for s in selected)}
    assert trained, selected
    for name in before:
        same = before[name].dtype == after[name].dtype and torch.equal(before[name], after[name])
        assert same == (name not in trained), name


@pytest.mark.slow
@pytest.mark.zoo_capability("plug-in method")
@pytest.mark.parametrize("case", params("plug-in method", heavy=True))
def test_plugin_method_runs(zoo, case, tmp_path) -> None:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("unlearnspec-capped-ga")
    except PackageNotFoundError:
        pytest.skip("`pip install -e examples/plugin_method` to test method entry points")
    out = tmp_path / "capped"
    unlearn(zoo, case, "ga_capped", out, cap=20.0)
    docs = zoo.corpus.raw("forget")[:8]
    assert forget_nll(out, docs) > forget_nll(zoo.checkpoint(case), docs)


@pytest.mark.slow
@pytest.mark.zoo_capability("diff")
@pytest.mark.parametrize("case", params("diff"))
def test_diff_compares_every_decoder_weight(zoo, case, tmp_path) -> None:
    import re

    from tests.zoo.cases import refused
    from unlearnspec.diff import DiffError, diff_checkpoints

    out = tmp_path / "ga"
    unlearn(zoo, case, "ga_gdr", out, max_steps=1)
    labels = ["rtn4", "nf4"]
    if refused("bnb", case):  # bnb would leave most of this decoder float: diff says so
        with pytest.raises(DiffError, match=r"--transform nf4 .*kind: rtn"):
            diff_checkpoints(zoo.checkpoint(case), out, ["nf4"])
        labels = ["rtn4"]
    report = diff_checkpoints(zoo.checkpoint(case), out, labels)
    decoder = {n: t.numel() for n, t in tensors(out).items()
               if t.ndim >= 2 and re.search(r"(^|\.)(layers|h)\.\d+\.", n)}
    compared = {td.name for td in report.tensors}
    share = sum(v for n, v in decoder.items() if n in compared) / sum(decoder.values())
    assert share >= 0.95, f"diff compares {share:.0%} of the decoder"
    for label, row in report.overall().items():
        assert row.n > 0 and 0 <= row.flip_rate <= 1, label

"""The measurement key is a value: claims, the engine and the reports agree on its fields."""
from __future__ import annotations

from hypothesis import given, strategies as st

from unlearnspec.engine.measurement import Measurement
from unlearnspec.spec import format_ref
from unlearnspec.spec.tree import MetricRef

names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


@given(metric=names, model=names, transform=st.none() | names, subject=names)
def test_a_terms_measurement_is_labelled_as_the_explanation_names_the_term(
        metric, model, transform, subject):
    ref = MetricRef(metric, model, transform, (0, 0))
    m = Measurement.of(ref, subject)
    assert (m.metric, m.model, m.transform, m.exclude) == (metric, model, transform, ())
    assert m.label() == format_ref(ref)


def test_a_term_without_a_model_is_the_subjects():
    m = Measurement.of(MetricRef("knowmem_forget", None, "rtn4", (0, 0)), "ga_klr")
    assert m == Measurement("knowmem_forget", "ga_klr", "rtn4")
    assert m.label() == "knowmem_forget[ga_klr @ rtn4]"


def test_a_measurement_without_holdouts_says_so_in_its_label_and_is_another_key():
    full = Measurement("knowmem_forget", "ga_klr", "rel")
    held = Measurement("knowmem_forget", "ga_klr", "rel", ("rel",))
    assert held.label() == "knowmem_forget[ga_klr @ rel] without rel's holdout"
    assert held != full and len({held, full}) == 2


@given(st.lists(st.builds(Measurement, metric=names, model=names,
                          transform=st.none() | names,
                          exclude=st.lists(names, max_size=2).map(tuple))))
def test_measurements_sort_with_full_precision_before_its_transforms(ms):
    """A claim decided on an interval sorts its measurements; one that names a metric at full
    precision and under a transform (`abs(privleak @ rtn4) <= abs(privleak) + 5`) once
    raised a TypeError there (None < 'rtn4')."""
    out = sorted(ms)
    assert [m.sort_key() for m in out] == sorted(m.sort_key() for m in ms)
    for a, b in zip(out, out[1:]):
        assert not b < a
    fp, q = Measurement("privleak", "sure"), Measurement("privleak", "sure", "rtn4")
    assert sorted([q, fp]) == [fp, q]

"""The JSON Schema editors use: valid draft 2020-12, accepts real specs, rejects mistakes."""
from __future__ import annotations

import json
import typing

import jsonschema
import pytest
import yaml

from spec_helpers import TINY
from unlearnspec.spec import spec_json_schema
from unlearnspec.spec.claim_entries import AGGREGATES, CLAIM_KEYS
from unlearnspec.spec.loader import TOP_KEYS
from unlearnspec.spec.sources import DATA_KEYS, MODEL_PATH_KEYS
from unlearnspec.transforms.registry import RtnConfig

Validator = jsonschema.Draft202012Validator


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = spec_json_schema()
    Validator.check_schema(schema)
    json.dumps(schema)  # JSON-able, so it can be written out for yaml-language-server
    return Validator(schema)


def errors(validator, text: str) -> list[str]:
    return [e.message for e in validator.iter_errors(yaml.safe_load(text))]


def test_tiny_spec_is_valid(validator) -> None:
    assert errors(validator, TINY) == []


@pytest.mark.parametrize("old, new", [
    ("bits: 4", "bitz: 4"),                       # rtn has no option bitz
    ("bits: 4", "bits: four"),                    # wrong type
    ("kind: rtn, bits: 8", "kind: rtm, bits: 8"),  # unknown kind
    ("split: retain", "split: retian"),           # Literal -> enum
    ("models:", "modles:"),                       # unknown top-level key
    ("version: 1", "version: 2"),
    ("unlearn: ga_klr", "unlearn: gaa"),          # unknown method
    ("epochs: 15}", "epochs: 15, bogus: 1}"),     # unknown method option
    ("subjects: [ga_klr]\n    assert: gamma", "subjects: []\n    assert: gamma"),
    ("rtn8:", "fp:"),                             # reserved name
    ("tiny: {builtin: tiny}", "tiny: {builtin: huge}"),
])
def test_mistakes_are_invalid(validator, old: str, new: str) -> None:
    assert old in TINY
    assert errors(validator, TINY.replace(old, new, 1))


def test_options_follow_the_kind(validator) -> None:
    # `mode` is a bnb option, not an rtn one: the kind decides which options are allowed
    assert errors(validator, TINY.replace("rtn8: {kind: rtn, bits: 8}",
                                          "rtn8: {kind: bnb, mode: nf4}")) == []
    assert errors(validator, TINY.replace("rtn8: {kind: rtn, bits: 8}",
                                          "rtn8: {kind: rtn, mode: nf4}"))


def test_defaults_and_enums_come_from_the_configs() -> None:
    schema = spec_json_schema()
    rtn = next(b["then"] for b in schema["$defs"]["transform"]["allOf"]
               if b["if"]["properties"]["kind"]["const"] == "rtn")
    assert rtn["properties"]["bits"] == {"type": "integer", "default": 4}
    grid = typing.get_type_hints(RtnConfig)["grid"]
    assert rtn["properties"]["grid"]["enum"] == list(typing.get_args(grid))
    assert "rtn" in schema["$defs"]["transform"]["properties"]["kind"]["enum"]


def test_the_schema_allows_the_keys_the_loader_allows() -> None:
    # an editor must neither flag a key the loader reads nor offer one it refuses
    schema = spec_json_schema()
    defs = schema["$defs"]
    assert set(schema["properties"]) == set(TOP_KEYS)
    assert set(defs["claim"]["properties"]) == set(CLAIM_KEYS)
    assert defs["claim"]["properties"]["aggregate"]["enum"] == list(AGGREGATES)
    assert set().union(*(b["properties"] for b in defs["data"]["oneOf"])) == set(DATA_KEYS)
    path_model = next(b for b in defs["model"]["oneOf"] if b.get("required") == ["path"])
    assert set(path_model["properties"]) == set(MODEL_PATH_KEYS)

"""A spec file being read, and the checks every section of it shares.

`SpecFile` knows the file's text, so each failed check raises a SpecError that names the file,
the line and the column of the key or value at fault, shows that line with a caret, and says
the fix. The section readers (`spec.sources`, `spec.components`, `spec.claim_entries`) call
these checks; `spec.loader` runs the sections in the order of their dependencies.
"""
from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, NoReturn

from ..errors import Location, SpecError, did_you_mean
from ..registry import ConfigError, UnknownComponent
from .claim_syntax import NAME_RE
from .claims import RESERVED
from .options import coerce, describe, field_hints, literal_choices
from .tree import DataSpec
from .yamlload import LocDict

CONFIDENCE_FIX = "write a level between 0.5 and 1, e.g. confidence: 0.95"
# config fields whose value names another spec entry (third-party configs can use the same
# field names to get the same check)
MODEL_OPTIONS = ("reference",)
DATA_OPTIONS = ("calibration",)
_VALUE_END = re.compile(r"\"[^\"]*\"|'[^']*'|[^,}\]#]*")


class SpecFile:
    """The text of one spec file, its name in messages, and the folder its relative paths
    start from."""

    def __init__(self, text: str, path: str, base_dir: Path) -> None:
        self.text, self.path, self.base_dir = text, path, base_dir
        self.lines = text.splitlines()

    def fail(self, loc: Location, message: str, hint: str | None = None,
             width: int | None = None) -> NoReturn:
        source = self.lines[loc.line - 1] if 0 < loc.line <= len(self.lines) else None
        span = None
        if source is not None and loc.column:
            start = loc.column - 1
            if width is None:
                m = _VALUE_END.match(source, start)
                width = len(m.group().rstrip()) if m else 1
            span = (start, start + max(1, width))
        raise SpecError(message, loc, source=source, span=span, hint=hint)

    def fail_key(self, m: LocDict, key: Any, message: str, hint: str | None = None
                 ) -> NoReturn:
        self.fail(m.key_locs[key], message, hint, width=len(str(key)))

    def fail_value(self, m: LocDict, key: Any, message: str, hint: str | None = None
                   ) -> NoReturn:
        self.fail(m.value_locs[key], message, hint)

    def check_keys(self, m: LocDict, allowed: Iterable[str], where: str) -> None:
        allowed = list(allowed)
        for key in m:
            if key not in allowed:
                hint = did_you_mean(str(key), allowed) or f"allowed keys: {', '.join(allowed)}"
                self.fail_key(m, key, f"unknown key '{key}' in {where}", hint)

    def int_value(self, m: LocDict, key: str, default: int, *, minimum: int, where: str) -> int:
        if key not in m:
            return default
        value = m[key]
        if type(value) is not int or value < minimum:
            self.fail_value(m, key, f"'{where}' must be an integer >= {minimum}, got {value!r}")
        return value

    def section(self, root: LocDict, key: str) -> LocDict:
        if key not in root or root[key] is None:
            return LocDict(root.key_locs.get(key, root.loc))
        if not isinstance(root[key], LocDict):
            self.fail_value(root, key, f"'{key}' must be a mapping of name: {{...}} entries, "
                            f"got {type(root[key]).__name__}")
        return root[key]

    def entry(self, section: LocDict, name: Any, what: str, example: str) -> LocDict:
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            self.fail_key(section, name, f"{what} name '{name}' is not a valid name",
                          "names start with a letter or '_' and use letters, digits, '_', "
                          "and '-' or '.' between them (e.g. rtn-4bit)")
        if name in RESERVED:
            self.fail_key(section, name, f"'{name}' is reserved and cannot name a {what}",
                          "'fp' means no transform; 'under', 'abs', 'min', 'max' are claim "
                          "syntax; pick another name")
        value = section[name]
        if not isinstance(value, LocDict):
            self.fail_value(section, name, f"{what} '{name}' must be a mapping, "
                            f"got {value!r}", f"write e.g. {name}: {example}")
        return value

    def typed(self, m: LocDict, key: str, hint: Any, where: str) -> Any:
        ok, value = coerce(m[key], hint)
        if not ok:
            choices = literal_choices(hint)
            hint_text = did_you_mean(str(m[key]), choices) if choices else None
            if isinstance(m[key], (str, int)) and "a number" in describe(hint):
                hint_text = "write a number such as 2e-5 or 0.0001"
                if _overflows(m[key]):
                    hint_text = f"{m[key]!s:.20} is too large to be a finite number; " \
                        + hint_text
            self.fail_value(m, key, f"{where}: option '{key}' must be {describe(hint)}, "
                            f"got {m[key]!r}", hint_text)
        return value

    def string(self, m: LocDict, key: str, where: str) -> str:
        value = m[key]
        if not isinstance(value, str) or not value.strip():
            if key == "xfail":  # `xfail: true` means "expected to fail": ask for why
                fix = 'write the reason the claim is expected to fail, e.g. xfail: "4-bit ' \
                      'RTN undoes the update"'
            elif value is None or (isinstance(value, str) and not value.strip()):
                fix = f"write a value after '{key}:' or remove the key"
            else:
                fix = f'quote it: {key}: "{value}"'
            self.fail_value(m, key, f"{where}: '{key}' must be a non-empty string, "
                            f"got {value!r}", fix)
        return value

    def confidence(self, m: LocDict, where: str) -> float:
        """A confidence level: a number in [0.5, 1)."""
        value = m["confidence"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0.5 <= value < 1:
            self.fail_value(m, "confidence", f"{where}: 'confidence' must be a level in "
                            f"[0.5, 1), got {value!r}", CONFIDENCE_FIX)
        return float(value)

    def reference(self, m: LocDict, key: str, names: Iterable[str], what: str, where: str
                  ) -> str:
        value = m[key]
        names = sorted(names)
        if not isinstance(value, str) or value not in names:
            self.fail_value(m, key, f"{where}: {key}: '{value}' is not a {what} in this spec",
                            did_you_mean(str(value), names) or
                            f"{what}s: {', '.join(names) or 'none defined'}")
        return value

    def default_data(self, e: LocDict, data: dict[str, DataSpec], where: str,
                     loc: Location) -> str:
        if "data" in e:
            return self.reference(e, "data", data, "data entry", where)
        if len(data) == 1:
            return next(iter(data))
        if not data:
            self.fail(loc, f"{where} needs data, but the spec defines no 'data:' entries",
                      "add e.g. data: {tiny: {builtin: tiny}}")
        self.fail(loc, f"{where} needs to say which data it uses: the spec defines "
                  f"{', '.join(data)}", f"add data: {next(iter(data))}")

    def spec_relative(self, config: Any, key: str) -> Any:
        """`config` with its file option `key` resolved against the spec's folder."""
        raw = getattr(config, key, None)
        if not raw or Path(raw).expanduser().is_absolute():
            return config
        return replace(config, **{key: str((self.base_dir / raw).resolve())})

    def component(self, registry: Any, e: LocDict, key: str, where: str) -> Any:
        value = e[key]
        if not isinstance(value, str):
            self.fail_value(e, key, f"{where}: '{key}' must be a name, got {value!r}",
                            f"choose one of {', '.join(registry.names())}")
        try:
            return registry.get(value)
        except UnknownComponent as exc:
            self.fail_value(e, key, f"{where}: unknown {exc.what} '{value}'",
                            exc.hint or f"known: {', '.join(exc.known)}")

    def make_config(self, comp: Any, e: LocDict, options: dict[str, Any], where: str,
                    loc: Location) -> Any:
        hints = field_hints(comp.config)
        typed = {k: self.typed(e, k, hints[k], where) if k in hints else plain(v)
                 for k, v in options.items()}
        try:
            return comp.make_config(typed)
        except ConfigError as exc:
            message = f"{where}: {exc}"
            found = _find_key(e, exc.key) if exc.key else None
            if found is None:
                self.fail(loc, message, exc.hint)
            owner, key = found
            # a bad value of a known option points at the value; anything else at the key
            if owner is e and key in hints:
                self.fail_value(owner, key, message, exc.hint)
            self.fail_key(owner, key, message, exc.hint)

    def refs_in_config(self, e: LocDict, config: Any, names: dict[str, set[str]],
                       where: str) -> None:
        """Option values that name models or data must name entries of this spec."""
        for key, what in [(k, "model") for k in MODEL_OPTIONS] + [(k, "data entry")
                                                                   for k in DATA_OPTIONS]:
            value = getattr(config, key, None)
            if value is None:
                continue
            pool = names[what]
            if key in e:
                self.reference(e, key, pool, what, where)
            elif value not in pool and getattr(config, "auc_retrain", None) is None:
                self.fail(e.loc, f"{where}: the default {key} '{value}' is not a {what} in "
                          "this spec", f"set {key}: one of {', '.join(sorted(pool)) or 'none'}"
                          + (" or auc_retrain: NUMBER" if hasattr(config, "auc_retrain")
                             else ""))


def _find_key(m: LocDict, key: str) -> tuple[LocDict, str] | None:
    """The mapping (this one or a nested one) that holds `key`, for nested options like
    `sure: {percentile: ...}`."""
    if key in m:
        return m, key
    for value in m.values():
        if isinstance(value, LocDict) and (found := _find_key(value, key)) is not None:
            return found
    return None


def _overflows(value: Any) -> bool:
    """A number's text that float() turns into inf (1e999) or cannot convert (10**400)."""
    try:
        return not math.isfinite(float(value))
    except (OverflowError, ValueError):
        return isinstance(value, int)


def plain(value: Any) -> Any:
    """Plain dicts and lists for config values (configs outlive the YAML locations)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value

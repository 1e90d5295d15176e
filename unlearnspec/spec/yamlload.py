"""YAML with line numbers: `yaml.safe_load` semantics, but every mapping key, value and list
item remembers where it was written, so a spec error can point at the user's own line.

We compose with `yaml.SafeLoader` (so the grammar, tags and scalar resolution are PyYAML's) and
build the Python values ourselves. Differences from `safe_load`, all on purpose:

- a duplicate key in a mapping is an error (PyYAML keeps the last one silently);
- keys must be scalars (a list or mapping as a key is an error, not a crash);
- an alias that refers to itself (`&a [*a]`) is an error, since a spec cannot be recursive;
- tags other than the core schema's (`!foo`, `!!set`, `!!omap`, `!!python/...`) are errors;
- a number that is not finite (`.inf`, `.nan`, `1.0e999`) is an error: no option means it;
- a spec is small, and a hostile one must fail fast, not hang a CI gate: at most
  `MAX_BYTES` of text, `MAX_DEPTH` levels of nesting, `MAX_VALUES` values (each alias use
  counted as the copy it stands for, so a "billion laughs" stops at once) and `MAX_ALIASES`
  alias uses. These are checked on PyYAML's event stream before anything is built, so
  nothing a spec can write drives a recursion past Python's limit.

Merge keys (`<<: *defaults`) work: keys written in the mapping win over merged ones.
"""
from __future__ import annotations

import math
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import (AliasEvent, CollectionEndEvent, CollectionStartEvent, Event,
                         NodeEvent, ScalarEvent)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from ..errors import Location, SpecError

_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"

MAX_BYTES = 256 * 1024  # the largest shipped spec is a few kB
MAX_DEPTH = 64          # levels of nested mappings and lists
MAX_VALUES = 10_000     # scalars and collections, alias uses counted as copies
MAX_ALIASES = 2_000     # `*name` uses


class LocDict(dict):
    """A mapping from YAML. `loc` is where the mapping starts; `key_locs[k]` / `value_locs[k]`
    where key `k` and its value were written; `text_locs[k]` where a string value's *text*
    starts (after an opening quote, or on the first content line of a block scalar)."""

    def __init__(self, loc: Location) -> None:
        super().__init__()
        self.loc = loc
        self.key_locs: dict[Any, Location] = {}
        self.value_locs: dict[Any, Location] = {}
        self.text_locs: dict[Any, Location] = {}


class LocList(list):
    """A sequence from YAML. `loc` is where it starts; `item_locs[i]` where item i was written."""

    def __init__(self, loc: Location) -> None:
        super().__init__()
        self.loc = loc
        self.item_locs: list[Location] = []


def load_yaml(text: str, path: str) -> Any:
    """Parse one YAML document. Malformed YAML raises SpecError at file:line:col with the
    source line and a caret. An empty document gives None."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise too_large(path, size)
    lines = text.splitlines()
    try:
        events = _checked_events(text, lines, path)
        node = _Replay(events).get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, lines, path) from None
    except yaml.YAMLError as exc:  # e.g. a reader error without a mark
        raise SpecError(f"not valid YAML: {exc}", Location(path, 1)) from None
    if node is None:
        return None
    return _Builder(lines, path).build(node)


def too_large(path: str, size: int) -> SpecError:
    return SpecError(f"the spec file is {size / 1024:,.0f} kB; a spec may be at most "
                     f"{MAX_BYTES // 1024} kB", Location(path, 1),
                     hint="a spec names models, data, transforms, metrics and claims; keep "
                     "data in data files (data: {path: ...}) and split very large specs")


def _checked_events(text: str, lines: list[str], path: str) -> list[Event]:
    """PyYAML's events for `text`, stopping at the first limit crossed (module doc).

    `sizes[anchor]` is how many values the anchored node expands to; an alias adds that many,
    so the count is the size of what `safe_load` would build, computed without building it."""
    events: list[Event] = []
    open_: list[tuple[str | None, int]] = []  # (anchor, count before) per open collection
    sizes: dict[str, int] = {}
    values = aliases = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        events.append(event)
        if isinstance(event, CollectionStartEvent):
            if len(open_) >= MAX_DEPTH:
                raise _limit(event, lines, path, f"this spec nests lists and mappings more "
                             f"than {MAX_DEPTH} levels deep",
                             "a spec needs a few levels (section, entry, options); flatten it")
            open_.append((event.anchor, values))
            values += 1
        elif isinstance(event, CollectionEndEvent):
            anchor, before = open_.pop()
            if anchor is not None:
                sizes[anchor] = values - before
        elif isinstance(event, ScalarEvent):
            values += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise _limit(event, lines, path, f"this spec uses YAML aliases (*name) more "
                             f"than {MAX_ALIASES:,} times", "write the values out, or use "
                             "fewer aliases; a spec needs a handful")
            values += sizes.get(event.anchor, 1)  # an open or unknown anchor: the builder or
            # the composer says what is wrong with it
        if values > MAX_VALUES:
            raise _limit(event, lines, path, f"this spec expands to more than {MAX_VALUES:,} "
                         "values" + (" (each alias use counts as a copy of what it names)"
                                     if aliases else ""),
                         "a spec names a few models, transforms, metrics and claims; check "
                         "for aliases that refer to aliases (a 'billion laughs')" if aliases
                         else "keep data in data files (data: {path: ...})")
    return events


def _limit(event: NodeEvent | Event, lines: list[str], path: str, message: str, hint: str
           ) -> SpecError:
    mark = event.start_mark
    source = lines[mark.line] if 0 <= mark.line < len(lines) else None
    return SpecError(message, Location(path, mark.line + 1, mark.column + 1), source=source,
                     span=(mark.column, mark.column + 1) if source is not None else None,
                     hint=hint)


class _Replay(Composer, Resolver):
    """PyYAML's composer reading already-checked events instead of a parser."""

    def __init__(self, events: list[Event]) -> None:
        self._events, self._pos = events, 0
        Composer.__init__(self)
        Resolver.__init__(self)

    def check_event(self, *choices: type) -> bool:
        if self._pos >= len(self._events):
            return False
        return not choices or isinstance(self._events[self._pos], choices)

    def peek_event(self) -> Event:
        return self._events[self._pos]

    def get_event(self) -> Event:
        self._pos += 1
        return self._events[self._pos - 1]


def _yaml_error(exc: yaml.MarkedYAMLError, lines: list[str], path: str) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or "malformed YAML"
    if exc.context:
        started = exc.context_mark
        where = f" started on line {started.line + 1}" if started and started is not mark else ""
        problem = f"{exc.context}{where}: {problem}"
    if mark is None:
        return SpecError(f"not valid YAML: {problem}", Location(path, 1))
    line, col = mark.line, mark.column
    source = lines[line] if 0 <= line < len(lines) else None
    hint = None
    if "\t" in (source or "") or "tab" in problem:
        hint = "YAML does not allow tabs for indentation; use spaces"
    elif "mapping values are not allowed" in problem:
        hint = ("a value containing ': ' must be quoted, e.g. assert: \"...\"")
    return SpecError(
        f"not valid YAML: {problem}",
        Location(path, line + 1, col + 1),
        source=source,
        span=(col, col + 1) if source is not None else None,
        hint=hint,
    )


class _Builder:
    def __init__(self, lines: list[str], path: str) -> None:
        self.lines = lines
        self.path = path
        self.constructor = SafeConstructor()
        self.active: set[int] = set()  # ids of collection nodes being built (alias cycles)

    def loc(self, node: Node) -> Location:
        return Location(self.path, node.start_mark.line + 1, node.start_mark.column + 1)

    def error(self, node: Node, message: str, hint: str | None = None) -> SpecError:
        mark, end = node.start_mark, node.end_mark
        source = self.lines[mark.line] if 0 <= mark.line < len(self.lines) else None
        width = end.column - mark.column if end.line == mark.line else 1
        return SpecError(message, self.loc(node), source=source,
                         span=(mark.column, mark.column + max(1, width))
                         if source is not None else None,
                         hint=hint)

    def build(self, node: Node) -> Any:
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        if id(node) in self.active:
            raise self.error(node, "this YAML alias refers to itself; a spec cannot be recursive")
        self.active.add(id(node))
        try:
            if isinstance(node, MappingNode) and node.tag == _MAP:
                return self.mapping(node)
            if isinstance(node, SequenceNode) and node.tag == _SEQ:
                out = LocList(self.loc(node))
                for item in node.value:
                    out.item_locs.append(self.loc(item))
                    out.append(self.build(item))
                return out
        finally:
            self.active.discard(id(node))
        raise self.error(node, f"unsupported YAML tag {node.tag!r}",
                         "a spec uses plain mappings, lists, strings and numbers")

    def scalar(self, node: ScalarNode) -> Any:
        try:
            value = self.constructor.construct_object(node)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise self.error(node, f"cannot read this YAML value: {problem}") from None
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. a bad !!timestamp
            raise self.error(node, f"cannot read this YAML value: {exc}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(node, f"'{node.value}' is not a finite number; no option of a "
                             "spec takes infinity or NaN",
                             "write an ordinary number such as 2.0e-5, or quote it if you "
                             "mean the text")
        return value

    def mapping(self, node: MappingNode) -> LocDict:
        out = LocDict(self.loc(node))
        merged: list[MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged.extend(self.merge_sources(value_node))
                continue
            key = self.key(key_node)
            if key in out:
                first = out.key_locs[key]
                raise self.error(key_node, f"duplicate key '{key}' (first written on line "
                                           f"{first.line})", "remove one of them")
            out[key] = self.build(value_node)
            out.key_locs[key] = self.loc(key_node)
            out.value_locs[key] = self.loc(value_node)
            if isinstance(value_node, ScalarNode) and isinstance(out[key], str):
                out.text_locs[key] = self.text_start(value_node)
        for source in merged:
            built = self.build(source)
            for key, value in built.items():
                if key not in out:  # keys written here override merged ones
                    out[key] = value
                    out.key_locs[key] = built.key_locs[key]
                    out.value_locs[key] = built.value_locs[key]
                    if key in built.text_locs:
                        out.text_locs[key] = built.text_locs[key]
        return out

    def merge_sources(self, node: Node) -> list[MappingNode]:
        if isinstance(node, MappingNode) and node.tag == _MAP:
            return [node]
        if isinstance(node, SequenceNode) and all(
            isinstance(n, MappingNode) and n.tag == _MAP for n in node.value
        ):
            return list(node.value)
        raise self.error(node, "a merge key '<<' needs a mapping or a list of mappings")

    def key(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            raise self.error(node, "a mapping key must be a plain name, not a list or mapping")
        key = self.scalar(node)
        try:
            hash(key)
        except TypeError:
            raise self.error(node, "a mapping key must be a plain name") from None
        return key

    def text_start(self, node: ScalarNode) -> Location:
        """Where a string's text starts. Quoted: after the quote. Block (| or >): the first
        non-blank character of the next non-empty line."""
        line, col = node.start_mark.line, node.start_mark.column
        if node.style in ("'", '"'):
            return Location(self.path, line + 1, col + 2)
        if node.style in ("|", ">"):
            for i in range(line + 1, min(node.end_mark.line + 1, len(self.lines))):
                stripped = self.lines[i].lstrip(" ")
                if stripped:
                    return Location(self.path, i + 1, len(self.lines[i]) - len(stripped) + 1)
        return Location(self.path, line + 1, col + 1)

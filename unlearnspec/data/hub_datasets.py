"""A MUSE corpus from the Hugging Face hub (e.g. `muse-bench/MUSE-News`), or from a local
copy of a hub dataset repo, converted once into MUSE's JSON layout (`muse.Corpus`).

A hub dataset repo stores each subset's splits as files `SUBSET/SPLIT-*.parquet` (the
layout `datasets` writes); JSON / JSONL files in the same places are read too. Honours
`HF_HUB_OFFLINE`: offline, only what is already in the local hub cache is used.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import MissingExtraError, RunError
from .files import build_dir_once, read_records, split_files, tree_digest
from .muse import Corpus

# subset -> (split on the hub, file in MUSE's layout, fields kept; () = plain text)
LAYOUT: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "verbmem": [("forget", "verbmem/forget.json", ("prompt", "gt"))],
    "knowmem": [(s, f"knowmem/{s}.json", ("question", "answer"))
                for s in ("forget_qa", "retain_qa", "forget_qa_icl", "retain_qa_icl")],
    "privleak": [(s, f"privleak/{s}.json", ()) for s in ("forget", "retain", "holdout")],
    "raw": [("forget", "raw/forget.json", ()), ("retain1", "raw/retain.json", ()),
            ("retain2", "raw/retain2.json", ()), ("holdout", "raw/holdout.json", ())],
}
REQUIRED = {"verbmem/forget.json", "knowmem/forget_qa.json", "privleak/forget.json",
            "privleak/holdout.json"}


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _convert(snapshot: Path, out: Path) -> list[str]:
    written = []
    for subset, splits in LAYOUT.items():
        for split, target, fields in splits:
            files = split_files(snapshot, subset, split)
            if not files:
                continue
            rows = [r for f in files for r in read_records(f)]
            if fields:
                data = [{k: r[k] for k in fields} for r in rows]
            else:
                data = [r["text"] if isinstance(r, dict) else r for r in rows]
            dest = out / target
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
            written.append(target)
    return written


def corpus_from_snapshot(snapshot: str | Path, cache_dir: str | Path) -> Corpus:
    """Convert a local hub-layout directory into MUSE's layout under `cache_dir` (once per
    content; atomic, so concurrent workers never see half a corpus)."""
    snapshot = Path(snapshot)

    def write(tmp: Path) -> None:
        missing = sorted(REQUIRED - set(_convert(snapshot, tmp)))
        if missing:
            raise RunError(f"{snapshot} is not a MUSE dataset: no data for "
                           f"{', '.join(missing)} (expected e.g. verbmem/forget-*.parquet)")

    out = build_dir_once(Path(cache_dir) / f"muse-{tree_digest(snapshot)}", write)
    return Corpus(out)


def snapshot_dataset(repo_id: str, allow_patterns: list[str], *,
                     revision: str | None = None) -> Path:
    """Download (or, offline, find in the hub cache) the files of dataset `repo_id`."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise MissingExtraError(f"loading corpus '{repo_id}' from the hub", "hub",
                                "huggingface_hub") from None
    offline = _offline()
    try:
        return Path(snapshot_download(
            repo_id, repo_type="dataset", revision=revision, local_files_only=offline,
            allow_patterns=allow_patterns,
        ))
    except Exception as exc:  # noqa: BLE001 - hub errors vary by version; all mean "not here"
        if offline:
            raise RunError(f"HF_HUB_OFFLINE is set and dataset '{repo_id}' is not in the "
                           f"local hub cache: run once online, or point the spec's data at "
                           f"a local directory in MUSE's layout") from exc
        raise RunError(f"could not download dataset '{repo_id}' from the hub: {exc}") from exc


def corpus_from_hub(repo_id: str, cache_dir: str | Path, *, revision: str | None = None) -> Corpus:
    """Download (or, offline, find in the hub cache) dataset `repo_id` and convert it."""
    snapshot = snapshot_dataset(repo_id, [f"{s}/*" for s in LAYOUT], revision=revision)
    return corpus_from_snapshot(snapshot, cache_dir)


def load_corpus(source: str | Path, cache_dir: str | Path, *,
                revision: str | None = None) -> Corpus:
    """A corpus from a local MUSE-layout directory, a local hub-layout directory, or a hub id;
    or RWKU: a per-target directory, or `<hub id or local copy>#<target>` (see data.rwku); or
    TOFU: `<hub id or local copy>#forget10[:llama2]` (see data.tofu)."""
    from . import rwku, tofu

    source, _, target = str(source).partition("#")  # RWKU: "jinzhuoran/RWKU#Stephen King"
    path = Path(source)
    tofu_split = tofu.parse_fragment(target) if target else None  # "locuslab/TOFU#forget10"
    if tofu_split:
        if path.is_dir():
            return Corpus(tofu.corpus_from_tofu(path, *tofu_split, cache_dir))
        return Corpus(tofu.tofu_from_hub(source, *tofu_split, cache_dir, revision=revision))
    if target:
        if path.is_dir():
            return Corpus(rwku.corpus_from_rwku_snapshot(path, target, cache_dir))
        return Corpus(rwku.rwku_from_hub(source, target, cache_dir, revision=revision))
    if path.is_dir() and tofu.is_tofu_dir(path):
        raise RunError(f"{source} is a TOFU dataset: say which forget split to unlearn after "
                       f"'#', e.g. '{source}#forget10' (or '#forget10:llama2' for Llama-2's "
                       f"[INST] template)")
    if path.is_dir() and rwku.is_rwku_target_dir(path):
        return Corpus(rwku.corpus_from_rwku(path, cache_dir))
    if path.is_dir():
        if (path / "verbmem" / "forget.json").is_file() or (path / "privleak").is_dir() and \
                (path / "privleak" / "forget.json").is_file():
            return Corpus(path)
        if (path / "raw" / "forget.json").is_file() or any((path / "raw").glob("forget*.txt")):
            return Corpus(path)  # training texts only (e.g. RMU's forget / retain corpora)
        return corpus_from_snapshot(path, cache_dir)
    if path.exists() or str(source).count("/") != 1:
        raise RunError(f"data source '{source}' is neither a directory nor a hub dataset id "
                       f"(owner/name)")
    return corpus_from_hub(str(source), cache_dir, revision=revision)

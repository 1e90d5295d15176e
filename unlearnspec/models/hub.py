"""Resolving a spec's `path:` (a local directory or a hub id) to files on disk.

Local paths are relative to the spec file. A hub id is downloaded with `huggingface_hub`
(pinned to `revision` when given; `HF_HUB_OFFLINE=1` makes it use the local hub cache only),
fetching safetensors weights unless the spec allows pickle.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import MissingExtraError, RunError
from .loading import check_weights_format


def _looks_like_hub_id(path: str) -> bool:
    return path.count("/") == 1 and not path.startswith((".", "/", "~"))


def resolve_local(path: str, base: Path) -> Path | None:
    p = Path(path).expanduser()
    p = p if p.is_absolute() else base / p
    return p if p.exists() else None


def resolve_checkpoint(path: str, *, revision: str | None, base: Path,
                       allow_pickle: bool = False) -> Path:
    local = resolve_local(path, base)
    if local is not None:
        if not local.is_dir():
            raise RunError(f"model path {local} is not a checkpoint directory")
        check_weights_format(local, allow_pickle=allow_pickle)
        return local
    if not _looks_like_hub_id(path):
        raise RunError(f"model path '{path}' does not exist (relative paths are relative to "
                       f"the spec file, {base}) and is not a hub id like 'org/name'")
    return snapshot(path, revision=revision, repo_type="model", allow_pickle=allow_pickle)


def snapshot(repo_id: str, *, revision: str | None, repo_type: str,
             allow_pickle: bool = False) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - transformers depends on it
        raise MissingExtraError("loading from the hub", "hub", "huggingface_hub") from exc
    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.parquet", "**/*.json",
                "**/*.parquet", "**/*.txt"]
    if allow_pickle:
        patterns += ["*.bin", "*.pt"]
    try:
        local = snapshot_download(repo_id, revision=revision, repo_type=repo_type,
                                  allow_patterns=patterns)
    except Exception as exc:
        raise RunError(f"could not fetch {repo_type} '{repo_id}'"
                       f"{f' at revision {revision}' if revision else ''} from the hub: "
                       f"{str(exc).rstrip('.')}. With HF_HUB_OFFLINE=1 it must already be in "
                       f"the local hub cache; or point `path:` at a local directory holding "
                       f"the checkpoint.") from exc
    return Path(local)

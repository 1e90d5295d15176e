"""Resolving a spec's `path:` (a local directory or a hub id) to files on disk.

Local paths are relative to the spec file. A hub id is downloaded with `huggingface_hub`
(pinned to `revision` when given; `HF_HUB_OFFLINE=1` makes it use the local hub cache only),
fetching safetensors weights unless the spec allows pickle.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import MissingExtraError, RunError
from .loading import check_remote_code, check_weights_format


def _looks_like_hub_id(path: str) -> bool:
    return path.count("/") == 1 and not path.startswith((".", "/", "~"))


def resolve_local(path: str, base: Path) -> Path | None:
    p = Path(path).expanduser()
    p = p if p.is_absolute() else base / p
    return p if p.exists() else None


def snapshot_commit(path: Path) -> str | None:
    """The commit hash a hub snapshot directory was resolved to (`huggingface_hub` names
    snapshot folders `.../snapshots/<40-hex commit>`), or None for any other directory.
    This is what a branch or tag pointed at when the run loaded it: a branch can move, the
    commit cannot."""
    name = path.name
    if path.parent.name == "snapshots" and len(name) == 40 and \
            all(c in "0123456789abcdef" for c in name):
        return name
    return None


def resolve_checkpoint(path: str, *, revision: str | None, base: Path,
                       allow_pickle: bool = False, trust_remote_code: bool = False) -> Path:
    """The checkpoint directory for a spec's `path:`, refusing pickle-only weights and
    checkpoints that ship their own code unless the spec opted in."""
    local = resolve_local(path, base)
    if local is not None:
        if not local.is_dir():
            raise RunError(f"model path {local} is not a checkpoint directory")
        check_weights_format(local, allow_pickle=allow_pickle)
        check_remote_code(local, trust_remote_code=trust_remote_code)
        return local
    if not _looks_like_hub_id(path):
        raise RunError(f"model path '{path}' does not exist (relative paths are relative to "
                       f"the spec file, {base}) and is not a hub id like 'org/name'")
    local = snapshot(path, revision=revision, repo_type="model", allow_pickle=allow_pickle,
                     code=trust_remote_code)
    check_remote_code(local, trust_remote_code=trust_remote_code)
    if not allow_pickle and not any(local.glob("*.safetensors")):
        raise RunError(f"hub model '{path}' (at {snapshot_commit(local) or local}) has no "
                       f"safetensors weights; pickle weights (.bin, .pt) are not fetched "
                       f"because loading them can run arbitrary code from whoever made the "
                       f"checkpoint. Set `allow_pickle: true` on this model in the spec if "
                       f"you trust it.")
    return local


def snapshot(repo_id: str, *, revision: str | None, repo_type: str,
             allow_pickle: bool = False, code: bool = False) -> Path:
    """The local snapshot directory of a hub repo. Pickle weights are fetched only with
    `allow_pickle`, Python files only with `code` (the spec's trust_remote_code)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - transformers depends on it
        raise MissingExtraError("loading from the hub", "hub", "huggingface_hub") from exc
    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.parquet", "**/*.json",
                "**/*.parquet", "**/*.txt"]
    if allow_pickle:
        patterns += ["*.bin", "*.pt"]
    if code:
        patterns += ["*.py"]
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

"""Lay a model folder into a Hugging Face cache as huggingface_hub itself leaves it after a download, so tests can
use hub ids with no network.

Layout (HF_HOME/hub/models--ORG--NAME/):
  blobs/<sha256>  for large (LFS) files such as safetensors, blobs/<git sha1> for the others;
  snapshots/<40-hex commit>/<path>  relative symlinks to ../../blobs/<id> (one more .. per subfolder);
  refs/main  the commit;
  trees/<commit>.json  the file listing `snapshot_download` caches (it checks a snapshot is complete against it).
Blobs are hard links to the source files where the file system allows (no copy of the weights), else copies.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".model")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def repo_folder(hub_cache: Path, repo_id: str) -> Path:
    return Path(hub_cache) / ("models--" + repo_id.replace("/", "--"))


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def lay_model(hf_home: Path, repo_id: str, source: Path, files: list[str] | None = None, tree: bool = True) -> Path:
    """Put the files of `source` (all, subfolders too, or the relative paths in `files`) into HF_HOME's hub cache
    under `repo_id`; return the snapshot folder. The commit is derived from the contents, so laying the same folder
    twice gives the same snapshot."""
    source = Path(source)
    names = files or sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    entries: dict[str, dict] = {}
    for name in names:
        path = source / name
        if path.suffix in LFS_SUFFIXES:
            sha = sha256_file(path)
            size = path.stat().st_size
            entries[name] = {"size": size, "blob_id": git_blob_sha1(b"lfs:" + sha.encode()), "lfs_sha256": sha,
                             "lfs_size": size, "blob": sha}  # fmt: skip
        else:
            data = path.read_bytes()
            entries[name] = {"size": len(data), "blob_id": git_blob_sha1(data), "blob": git_blob_sha1(data)}
    commit = hashlib.sha1(json.dumps(entries, sort_keys=True).encode()).hexdigest()
    root = repo_folder(Path(hf_home) / "hub", repo_id)
    snapshot = root / "snapshots" / commit
    for sub in (root / "blobs", snapshot, root / "refs"):
        sub.mkdir(parents=True, exist_ok=True)
    for name, entry in entries.items():
        _link_or_copy(source / name, root / "blobs" / entry["blob"])
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():  # relative, as huggingface_hub makes them: up to the repo folder, then blobs/
            link.symlink_to(Path(*[".."] * (name.count("/") + 2)) / "blobs" / entry["blob"])
    (root / "refs" / "main").write_text(commit)  # no newline, as huggingface_hub writes it
    if tree:
        listing = {name: {k: v for k, v in e.items() if k != "blob"} for name, e in entries.items()}
        (root / "trees").mkdir(exist_ok=True)
        (root / "trees" / f"{commit}.json").write_text(json.dumps({"format_version": 1, "files": listing}, indent=1))
    return snapshot

"""The bundle: the directory contract between export, quantize and the runtime.

A bundle is ``manifest.json`` + ``tokenizer.json`` + three ONNX graphs (with external data where
large). The manifest says everything a device needs (dims, prompt ids, stop ids, front end, graph
precisions) and the sha256 of every file. Bundles are only ever written through
:func:`writing_bundle`: a temporary sibling directory renamed into place at the end, so an
interrupted export or quantization leaves nothing half-written, and an existing bundle is only
replaced with ``force``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tinyaudio.errors import TinyAudioError

FORMAT = "tinyaudio-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
GRAPHS = ("encoder", "projector", "decoder")
PRECISIONS = ("fp32", "int8", "int4")
_REQUIRED = ("format", "format_version", "model", "dims", "audio", "prompt", "graphs", "files")
_UNFINISHED: set[Path] = set()  # work directories to remove if the process is interrupted


@contextlib.contextmanager
def scratch_directory(prefix: str, parent: Path) -> Iterator[Path]:
    """A temporary directory that is removed on exit, on error and on Ctrl-C/SIGTERM."""
    try:
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    except OSError as exc:
        raise TinyAudioError(f"cannot write in {parent}: {exc.strerror}") from None
    _UNFINISHED.add(path)
    try:
        yield path
    finally:
        _UNFINISHED.discard(path)
        shutil.rmtree(path, ignore_errors=True)


def discard_unfinished() -> None:
    """Remove every work directory still in use (called from the interrupt handler)."""
    for path in list(_UNFINISHED):
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def writing_bundle(output: Path, force: bool = False) -> Iterator[Path]:
    """Yield an empty work directory that becomes ``output`` only if the block completes."""
    output = Path(output).expanduser().absolute()
    check_output(output, force)
    with scratch_directory(f".{output.name}.partial-", output.parent) as work:
        yield work
        if output.exists():
            with scratch_directory(f".{output.name}.old-", output.parent) as retired:
                output.replace(retired / output.name)
                work.replace(output)
        else:
            work.replace(output)


def check_output(output: Path, force: bool) -> None:
    """Fail before any work if ``output`` cannot be written (or would be overwritten)."""
    if output.exists() and not force:
        raise TinyAudioError(f"{output} already exists; pass --force to replace it")
    if output.exists() and not output.is_dir():
        raise TinyAudioError(f"{output} exists and is not a directory")
    parent = output.parent
    blocking = next((p for p in [parent, *parent.parents] if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise TinyAudioError(f"cannot write {output}: {blocking} is a file, not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TinyAudioError(f"cannot write {output}: {exc.strerror} ({exc.filename})") from None
    try:  # os.access says yes to root on a read-only file system; trying is the only real test
        Path(tempfile.mkdtemp(prefix=f".{output.name}.probe-", dir=parent)).rmdir()
    except OSError as exc:
        raise TinyAudioError(
            f"cannot write {output}: {parent} is not writable ({exc.strerror})"
        ) from None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Add the checksums of every file in ``directory`` and write manifest.json."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **manifest,
        "files": {p.relative_to(directory).as_posix(): sha256(p) for p in files},
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(directory: Path) -> dict[str, Any]:
    """Parse and sanity-check manifest.json; every problem is one clear line."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise TinyAudioError(f"bundle {directory} does not exist or is not a directory")
    if not path.is_file():
        raise TinyAudioError(f"{directory} is not a bundle: it has no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TinyAudioError(f"{path} is damaged: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise TinyAudioError(f"{path} is not a tinyaudio bundle manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise TinyAudioError(
            f"bundle {directory} has format version {version}; this tinyaudio reads up to "
            f"{FORMAT_VERSION}: upgrade tinyaudio"
        )
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing:
        raise TinyAudioError(f"{path} is damaged: it lacks {', '.join(missing)}")
    for name in GRAPHS:
        graph = manifest["graphs"].get(name)
        if graph is None or not (directory / graph["file"]).is_file():
            raise TinyAudioError(f"bundle {directory} is missing its {name} graph")
    return manifest


def verify_bundle(directory: Path, manifest: dict[str, Any] | None = None) -> None:
    """Check every file against the manifest's sha256 (and that no listed file is missing)."""
    directory = Path(directory)
    manifest = manifest or read_manifest(directory)
    for name, digest in manifest["files"].items():
        path = directory / name
        if not path.is_file():
            raise TinyAudioError(f"bundle {directory} is missing {name}")
        if sha256(path) != digest:
            raise TinyAudioError(f"checksum mismatch in bundle {directory}: {name} was modified")

"""The bundle: the directory contract between export, quantize and the runtime.

A bundle is ``manifest.json`` + ``tokenizer.json`` + three ONNX graphs (with external data where
large). The manifest says everything a device needs (dims, prompt ids, stop ids, front end, graph
precisions) and the sha256 of every file. Bundles are only ever written through
:func:`writing_directory`: a temporary sibling directory renamed into place at the end, so an
interrupted export or quantization leaves nothing half-written, and an existing bundle is only
replaced with ``force``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tinyaudio.errors import TinyAudioError

FORMAT = "tinyaudio-bundle"
FORMAT_VERSION = 2  # 2: GroupQueryAttention decoder with a shared heads-first KV cache
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


@dataclass(frozen=True)
class OutputKind:
    """What a command writes: ``--force`` replaces an existing directory only if it is one of
    these, made of nothing but the files ``files`` says it consists of (None: not one)."""

    name: str
    files: Callable[[Path], set[str] | None]


def bundle_files(directory: Path) -> set[str] | None:
    """manifest.json and the files it lists, or None if ``directory`` holds no bundle."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None  # an unreadable one is an OSError: the CLI names the file
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return None
    listed = manifest.get("files")
    return {MANIFEST, *listed} if isinstance(listed, dict) else None


BUNDLE = OutputKind("tinyaudio bundle", bundle_files)


@contextlib.contextmanager
def writing_directory(
    output: Path, force: bool = False, kind: OutputKind = BUNDLE
) -> Iterator[Path]:
    """Yield an empty work directory that becomes ``output`` only if the block completes.

    The final rename never replaces what appeared at ``output`` meanwhile (another export to
    the same place): rename(2) refuses a non-empty directory. Files get the umask's usual
    permissions, so a service user can run a bundle another user exported.
    """
    output = Path(output).expanduser().absolute()
    check_output(output, force, kind)
    with scratch_directory(f".{output.name}.partial-", output.parent) as work:
        yield work
        _publish_permissions(work)
        if force and _occupied(output):
            check_output(output, force, kind)  # still ours to replace?
            with scratch_directory(f".{output.name}.old-", output.parent) as retired:
                old = retired / output.name
                output.rename(old)
                try:
                    _rename_into_place(work, output)
                except TinyAudioError:
                    _put_back(old, output)
                    raise
        else:
            _rename_into_place(work, output)


_OCCUPIED = {errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR}


def _rename_into_place(work: Path, output: Path) -> None:
    try:
        work.rename(output)
    except OSError as exc:
        if exc.errno not in _OCCUPIED:
            raise
        raise TinyAudioError(
            f"{output} appeared while this ran (another export to the same place?): "
            f"nothing was replaced ({exc.strerror})"
        ) from None


def _put_back(old: Path, output: Path) -> None:
    """Return the replaced output to its place; if that is taken too, keep it beside it."""
    try:
        old.rename(output)
    except OSError:
        kept = Path(tempfile.mkdtemp(prefix=f"{output.name}.replaced-", dir=output.parent))
        old.rename(kept / output.name)
        raise TinyAudioError(
            f"{output} appeared while this ran; the one that was there is kept in {kept}"
        ) from None


def _publish_permissions(directory: Path) -> None:
    """mkdtemp makes 0700 and onnx writes external data 0600: give the umask's usual modes.
    A file hard-linked from elsewhere (quantize links the source's unchanged files) gets a copy
    of its own first: changing its mode would change the source's."""
    umask = _umask()
    for path in [directory, *directory.rglob("*")]:
        wanted = (0o777 if path.is_dir() else 0o666) & ~umask
        info = path.lstat()
        if stat.S_IMODE(info.st_mode) == wanted:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
            copy = path.with_name(path.name + ".copy")
            shutil.copyfile(path, copy)
            copy.replace(path)
        path.chmod(wanted)


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for every thread)."""
    with contextlib.suppress(OSError, StopIteration, ValueError):
        status = Path("/proc/self/status").read_text().splitlines()
        return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _occupied(output: Path) -> bool:
    """Something is at ``output``: a file, a link, or a directory with anything in it."""
    if output.is_symlink() or (output.exists() and not output.is_dir()):
        return True
    return output.is_dir() and any(output.iterdir())


def check_output(output: Path, force: bool, kind: OutputKind = BUNDLE) -> None:
    """Fail before any work if ``output`` cannot be written, or holds anything but a ``kind``
    that ``force`` allows replacing. An empty directory is as good as none."""
    if output == Path.cwd():
        raise TinyAudioError(f"{output} is the current directory: choose an output inside it")
    if _occupied(output):
        if output.is_symlink():
            raise TinyAudioError(f"{output} is a symbolic link: choose another output")
        if not output.is_dir():
            raise TinyAudioError(
                f"{output} already exists and is not a directory: choose another output"
            )
        files = kind.files(output)
        if files is None:
            raise TinyAudioError(
                f"{output} already exists and is not a {kind.name}: tinyaudio replaces only "
                "its own outputs (even with --force); choose another output"
            )
        if not force:
            raise TinyAudioError(f"{output} already exists; pass --force to replace it")
        others = sorted(
            path.relative_to(output).as_posix()
            for path in output.rglob("*")
            if not path.is_dir() and path.relative_to(output).as_posix() not in files
        )
        if others:
            raise TinyAudioError(
                f"{output} holds {len(others)} file(s) that are not part of its {kind.name} "
                f"(first: {others[0]}): move them away before --force replaces it"
            )
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
    if not isinstance(version, int) or isinstance(version, bool):
        raise TinyAudioError(f"{path} is damaged: format_version is {version!r}, not a number")
    if version > FORMAT_VERSION:
        raise TinyAudioError(
            f"bundle {directory} has format version {version}; this tinyaudio reads up to "
            f"{FORMAT_VERSION}: upgrade tinyaudio"
        )
    if version < FORMAT_VERSION:
        raise TinyAudioError(
            f"bundle {directory} has format version {version}, from an older tinyaudio whose "
            f"decoder this one no longer runs: export it again (tinyaudio-export)"
        )
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing:
        raise TinyAudioError(f"{path} is damaged: it lacks {', '.join(missing)}")
    _check_paths(directory, manifest)
    for name in GRAPHS:
        if not (directory / manifest["graphs"][name]["file"]).is_file():
            raise TinyAudioError(f"bundle {directory} is missing its {name} graph")
    return manifest


def _check_paths(directory: Path, manifest: dict[str, Any]) -> None:
    """Every file the runtime opens is named by the manifest: each must be a plain relative
    path inside the bundle and one of its checksummed files, or --verify would not cover it."""
    damaged = f"{directory / MANIFEST} is damaged"
    files, graphs = manifest["files"], manifest["graphs"]
    if not isinstance(files, dict) or not isinstance(graphs, dict):
        raise TinyAudioError(f"{damaged}: 'files' and 'graphs' must be objects")
    for name in files:
        _check_relative(name, damaged)
    opened = ["tokenizer.json"]
    for graph in GRAPHS:
        entry = graphs.get(graph)
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise TinyAudioError(f"bundle {directory} is missing its {graph} graph")
        data = entry["file"] + ".data"
        opened += [entry["file"], *([data] if data in files or (directory / data).exists() else [])]
    embeddings = manifest.get("embeddings") or {}
    if not isinstance(embeddings, dict):
        raise TinyAudioError(f"{damaged}: 'embeddings' must be an object")
    opened += [
        part["file"] for part in embeddings.values() if isinstance(part, dict) and "file" in part
    ]
    inside = directory.resolve()
    for name in opened:
        _check_relative(name, damaged)
        if name not in files:
            raise TinyAudioError(f"{damaged}: it names {name}, which has no checksum")
        if not (directory / name).resolve().is_relative_to(inside):  # a link that leads out
            raise TinyAudioError(f"bundle {directory}: {name} is a link to a file outside it")


def _check_relative(name: object, damaged: str) -> None:
    parts = PurePosixPath(name).parts if isinstance(name, str) else ()
    if not parts or parts[0] == "/" or ".." in parts or "\\" in name:
        raise TinyAudioError(f"{damaged}: the path {name!r} leads outside the bundle")


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

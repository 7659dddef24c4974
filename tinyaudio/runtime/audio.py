"""Audio files and arrays → 16 kHz mono float32, the only input the models understand.

Files are decoded and resampled in blocks, so an hour-long recording never sits in memory whole:
``audio_blocks`` yields model-ready blocks and the transcriber cuts windows from them as they come.
"""

from __future__ import annotations

import logging
import re
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from tinyaudio.errors import TinyAudioError
from tinyaudio.runtime.lengths import SAMPLE_RATE

BLOCK_SECONDS = 10
TOLERANCE = 0.05  # seconds missing before a file with a frame count counts as cut short
_DATA_CHUNK = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+) \(should be (\d+)\)", re.MULTILINE)

log = logging.getLogger("tinyaudio")


def probe_audio(path: str | Path) -> sf._SoundFileInfo:
    """Fail early, in one line, on a missing, unreadable, undecodable or empty file (reads only
    the header). Each message names the actual problem."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        if stat.S_ISREG(mode):
            with path.open("rb"):
                pass
    except FileNotFoundError:
        raise TinyAudioError(f"audio file not found: {path}") from None
    except OSError as exc:
        raise TinyAudioError(f"cannot read {path}: {(exc.strerror or str(exc)).lower()}") from None
    if stat.S_ISDIR(mode):
        raise TinyAudioError(f"{path} is a directory, not an audio file")
    if not stat.S_ISREG(mode):
        raise TinyAudioError(
            f"{path} is a pipe or a device, not an audio file: save the audio to a file first"
        )
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise TinyAudioError(f"cannot decode {path}: {_decode_problem(exc)}") from None
    if info.frames == 0:
        raise TinyAudioError(f"{path}: the audio is empty")
    return info


def _decode_problem(exc: Exception) -> str:
    """libsndfile's reason, unless it is one that misleads for a plain readable file."""
    reason = getattr(exc, "error_string", "") or str(exc)
    if not reason or "possibly a pipe" in reason or "does not exist" in reason:
        return "not a format libsndfile reads, or a damaged file (unsupported or damaged)"
    return f"{reason.rstrip('.')} (unsupported or damaged)"


def audio_blocks(
    audio: str | Path | np.ndarray, sample_rate: int | None = None
) -> Iterator[np.ndarray]:
    """A file (any format libsndfile reads) or an array with its rate → 16 kHz mono blocks."""
    if isinstance(audio, (str, Path)):
        return _convert(_file_blocks(Path(audio)), probe_audio(audio).samplerate, str(audio))
    if sample_rate is None:
        raise TinyAudioError("pass sample_rate with a numpy array of audio")
    data = np.asarray(audio)
    if data.ndim not in (1, 2):
        raise TinyAudioError(f"audio: expected [samples] or [samples, channels], got {data.shape}")
    step = BLOCK_SECONDS * max(sample_rate, 1)
    return _convert((data[i : i + step] for i in range(0, len(data), step)), sample_rate, "audio")


def load_audio(path: str | Path) -> np.ndarray:
    """A whole file as one 16 kHz mono array (for short clips: gate audio, the reference)."""
    return np.concatenate(list(audio_blocks(path)))


def _file_blocks(path: Path) -> Iterator[np.ndarray]:
    """The file's frames in blocks; a file shorter than its header says gets a warning (a
    recording cut off mid-copy would otherwise transcribe as if it were whole)."""
    read = 0
    try:
        with sf.SoundFile(str(path)) as f:
            # read() until it returns nothing: blocks() pads a short file up to its frame count
            while len(block := f.read(BLOCK_SECONDS * f.samplerate, "float32", always_2d=True)):
                read += len(block)
                yield block
            short = _header_overstates(f.extra_info) or f.frames - read > TOLERANCE * f.samplerate
            seconds = read / f.samplerate
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise TinyAudioError(f"cannot decode {path}: {exc}") from None
    if short:
        log.warning(
            "%s ends before its header says it should (truncated file?): transcribed the "
            "%.2f s it holds", path, seconds,
        )  # fmt: skip


def _header_overstates(log_text: str) -> bool:
    """libsndfile's log says a WAV/AIFF data chunk is longer than the file (it reads what there
    is, silently). A chunk that is *shorter* than the file is a streamed header, not damage."""
    match = _DATA_CHUNK.search(log_text)
    return match is not None and int(match[1]) > int(match[2])


class Converter:
    """Blocks at ``sample_rate`` ([samples] or [samples, channels], int or float) → checked
    16 kHz mono float32, resampled as a stream (the same samples as resampling all at once)."""

    def __init__(self, sample_rate: int, name: str) -> None:
        if sample_rate <= 0:
            raise TinyAudioError(f"{name}: invalid sample rate {sample_rate}")
        self.name = name
        self.given = self.produced = 0
        self._resampler = None
        if sample_rate != SAMPLE_RATE:
            self._resampler = soxr.ResampleStream(sample_rate, SAMPLE_RATE, 1, dtype="float32")

    def __call__(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        block = _mono_float(block, self.name)
        self.given += len(block)
        if self._resampler is not None:
            block = self._resampler.resample_chunk(block, last=last)
        self.produced += len(block)
        return block

    def finish(self) -> np.ndarray:
        """The resampler's last samples (call once, at the end of the stream)."""
        return self(np.zeros(0, np.float32), last=True)


def _convert(blocks: Iterable[np.ndarray], sample_rate: int, name: str) -> Iterator[np.ndarray]:
    """Converted blocks of a whole recording, which must not be empty."""
    converter = Converter(sample_rate, name)
    for block in blocks:
        converted = converter(block)
        if len(converted):
            yield converted
    tail = converter.finish()
    if len(tail):
        yield tail
    if converter.given == 0:
        raise TinyAudioError(f"{name}: the audio is empty")
    if converter.produced == 0:
        raise TinyAudioError(
            f"{name}: {converter.given} samples at {sample_rate} Hz are too short to resample "
            f"to {SAMPLE_RATE} Hz"
        )


def _mono_float(block: np.ndarray, name: str) -> np.ndarray:
    block = np.asarray(block)
    if np.issubdtype(block.dtype, np.integer):
        block = block / float(np.iinfo(block.dtype).max)
    elif not np.issubdtype(block.dtype, np.floating):
        raise TinyAudioError(f"{name}: expected int or float samples, got {block.dtype}")
    if block.ndim == 2:
        block = block.mean(axis=1)
    block = np.ascontiguousarray(block, dtype=np.float32)
    if not np.isfinite(block).all():
        raise TinyAudioError(f"{name}: the audio contains NaN or infinite samples")
    return block

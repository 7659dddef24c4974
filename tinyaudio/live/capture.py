"""Where live audio comes from: a PortAudio input device (sounddevice) or a file replayed at
real-time pace. Both push blocks through the same ``Capture.callback``, the one sounddevice
calls, so a replay exercises exactly the path a microphone does.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from tinyaudio.errors import TinyAudioError, missing_extra
from tinyaudio.runtime.audio import probe_audio

BLOCK_SECONDS = 0.1


def import_sounddevice() -> Any:
    """sounddevice, or a one-line error naming what to install (the extra, or PortAudio)."""
    try:
        import sounddevice
    except ImportError as exc:
        raise missing_extra(exc, "tinyaudio live", "mic") from None
    except OSError:  # sounddevice raises OSError when libportaudio is not on the system
        raise TinyAudioError(
            "PortAudio is not installed: sudo apt-get install libportaudio2 "
            "(macOS: brew install portaudio)"
        ) from None
    return sounddevice


def describe_devices(sd: Any) -> str:
    """Input devices, one per line: index, name, channels, native rate."""
    lines = [
        f"  {index}: {device['name']} ({device['max_input_channels']} ch, "
        f"{device['default_samplerate']:.0f} Hz)"
        for index, device in enumerate(sd.query_devices())
        if device["max_input_channels"] > 0
    ]
    return "\n".join(lines)


def input_device(sd: Any, device: str | None) -> dict[str, Any]:
    """The chosen (or default) input device's description, or a clear error listing them all."""
    devices = describe_devices(sd)
    if not devices:
        raise TinyAudioError("no audio input device found (PortAudio sees no microphone)")
    wanted: int | str | None = int(device) if device and device.isdigit() else device
    try:
        return sd.query_devices(wanted, kind="input")
    except (ValueError, sd.PortAudioError) as exc:
        choice = "the default input" if device is None else f"input device {device!r}"
        raise TinyAudioError(
            f"cannot use {choice} ({exc}); input devices:\n{devices}".replace("\n", " | ")
        ) from None


class Capture:
    """A queue of captured blocks (at ``sample_rate``, as the device delivers them) filled by
    ``callback`` from an input stream or a replay; ``None`` marks the end of the source."""

    def __init__(self) -> None:
        self.blocks: queue.Queue[np.ndarray | None] = queue.Queue()
        self.sample_rate = 0
        self.overflows = 0
        self.stopped = threading.Event()

    def callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """sounddevice's InputStream callback signature; copies the block out of PortAudio's
        buffer and returns at once (it runs on the audio thread)."""
        if status:
            self.overflows += 1
        self.blocks.put(indata.copy())

    def stop(self) -> None:
        self.stopped.set()

    def stream(self) -> Iterator[np.ndarray]:
        """Blocks as they arrive until the source ends, or until ``stop`` is called (then what is
        already queued, and no more)."""
        while True:
            stopping = self.stopped.is_set()
            try:
                block = self.blocks.get(timeout=0.05) if not stopping else self.blocks.get_nowait()
            except queue.Empty:
                if stopping:
                    return
                continue
            if block is None:
                return
            yield block

    @contextmanager
    def microphone(self, device: str | None) -> Iterator[dict[str, Any]]:
        """Capture from a PortAudio input at its native rate and channel count."""
        sd = import_sounddevice()
        info = input_device(sd, device)
        self.sample_rate = int(info["default_samplerate"])
        channels = max(1, min(int(info["max_input_channels"]), 2))
        try:
            stream = sd.InputStream(
                device=info["index"], samplerate=self.sample_rate, channels=channels,
                dtype="float32", blocksize=int(self.sample_rate * BLOCK_SECONDS),
                callback=self.callback,
            )  # fmt: skip
            stream.start()
        except sd.PortAudioError as exc:  # busy device, unsupported rate or channel count
            raise TinyAudioError(f"cannot open {info['name']!r}: {exc}") from None
        try:
            yield info
        finally:
            stream.stop()
            stream.close()
            self.blocks.put(None)

    @contextmanager
    def replay(self, path: str | Path, pace: float = 1.0) -> Iterator[dict[str, Any]]:
        """Feed ``path`` through ``callback`` in 100 ms blocks at ``pace`` × real time (0: no
        waiting)."""
        info = probe_audio(path)
        self.sample_rate = info.samplerate

        def play() -> None:
            size = int(info.samplerate * BLOCK_SECONDS)
            started = time.monotonic()
            with sf.SoundFile(str(path)) as f:
                for index, block in enumerate(f.blocks(size, dtype="float32", always_2d=True)):
                    if self.stopped.is_set():
                        break
                    if pace:
                        due = started + index * BLOCK_SECONDS / pace
                        time.sleep(max(0.0, due - time.monotonic()))
                    self.callback(block, len(block), None, None)
            self.blocks.put(None)

        player = threading.Thread(target=play, name="tinyaudio-replay", daemon=True)
        player.start()
        try:
            yield {"name": str(path), "default_samplerate": info.samplerate}
        finally:
            self.stop()
            player.join()

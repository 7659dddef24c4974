"""Session memory: freed activations go back to the system instead of staying on the heap."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tinyaudio.runtime import sessions
from tinyaudio.runtime.engine import Engine

# A window's activations, as glibc sees them: one large block freed (which raises glibc's mmap
# threshold to its size), then blocks just under it allocated and freed, each followed by a small
# block that stays (so the freed ones cannot be trimmed off the heap's top). Prints the MB still
# resident.
HEAP_CHURN = """
import sys
import numpy as np
from tinyaudio.memory import pin_malloc_thresholds
if sys.argv[1] == "pinned":
    pin_malloc_thresholds()
def rss_mb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) >> 10
big = np.ones(4 << 20, np.float32)
del big
before = rss_mb()
blocks, kept = [], []
for _ in range(10):
    blocks.append(np.ones(2 << 20, np.float32))
    kept.append(np.ones(4 << 10, np.float32))
del blocks
print(rss_mb() - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc thresholds")
def test_freed_activations_leave_the_heap():
    # glibc's defaults, whatever the environment that runs the tests tunes
    tuning = ("GLIBC_TUNABLES", "LD_PRELOAD")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k not in tuning}
    kept = {}
    for mode in ("default", "pinned"):
        done = subprocess.run([sys.executable, "-c", HEAP_CHURN, mode], capture_output=True,
                              text=True, check=True, cwd=REPO, env=env)  # fmt: skip
        kept[mode] = int(done.stdout)
    assert kept["default"] >= 64, kept  # glibc alone keeps the 80 MB (the case being fixed)
    assert kept["pinned"] <= 8, kept


def test_only_the_encoder_has_an_arena(make_bundle, monkeypatch):
    """The projector and decoder allocate from malloc; the encoder from an arena that each run
    empties; the thresholds are pinned first."""
    bundle = make_bundle("int8")
    pinned = []
    monkeypatch.setattr(sessions, "pin_malloc_thresholds", lambda: pinned.append(True))
    engine = Engine.from_bundle(bundle, threads=1)
    for graph in ("encoder", "projector", "decoder"):
        session = getattr(engine, graph)
        options = (session.session if graph == "decoder" else session).get_session_options()
        assert options.enable_cpu_mem_arena == (graph == "encoder"), graph
        assert not options.enable_mem_pattern
    assert len(pinned) == 3
    shrink = sessions.ENCODER_RUN.get_run_config_entry("memory.enable_memory_arena_shrinkage")
    assert shrink == "cpu:0"

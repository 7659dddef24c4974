"""`tinyaudio bench --quick`: the harness runs every configuration on tiny-random and writes
sane results. Timings are never asserted; their bookkeeping is."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, cli_error
from tinyaudio.bench.cli import ORDER, Run, measure_in_child
from tinyaudio.bench.clips import transcript_tokens
from tinyaudio.bench.report import targets
from tinyaudio.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    output = tmp_path_factory.mktemp("bench") / "out"
    # module scope runs before the autouse cache fixture: isolate the child's cache here
    cache = {
        "TINYAUDIO_CACHE": str(tmp_path_factory.getbasetemp() / "cache"),
        "HF_HUB_OFFLINE": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tinyaudio.cli", "bench", "--quick", "--repeats", "1", "-o",
         str(output)],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, **cache},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return output, done


def test_quick_bench_writes_json_markdown_and_plot(quick):
    output, done = quick
    report = json.loads((output / "bench.json").read_text())
    assert list(report["results"]) == list(ORDER)
    assert report["model"] == "tiny-random" and report["seconds"] == [5.0, 10.0, 30.0]
    assert report["machine"]["memory_bandwidth_gbs"] > 0
    assert report["machine"]["versions"]["onnxruntime"]
    table = (output / "bench.md").read_text()
    assert table in done.stdout
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0][2:] for row in rows[1:]] == list(ORDER)
    assert (output / "bench.png").read_bytes()[:8] == PNG_MAGIC


def test_every_configuration_does_the_same_work(quick):
    """Same clips, same prompt lengths, same number of new tokens everywhere; the records add up."""
    results = json.loads((quick[0] / "bench.json").read_text())["results"]
    assert {n: r.get("reason") for n, r in results.items() if r["status"] != "ok"} == {}
    prompts = {name: [c["prompt_tokens"] for c in r["clips"]] for name, r in results.items()}
    assert len({tuple(p) for p in prompts.values()}) == 1, prompts
    for name, result in results.items():
        assert result["peak_rss_mb"] >= result["rss_loaded_mb"] > 0, name
        assert result["size_mb"] > 0, name
        for clip in result["clips"]:
            assert clip["new_tokens"] == transcript_tokens(clip["audio_s"]), name
            parts = clip["encode_s"] + clip["prefill_s"] + clip["decode_s"]
            assert clip["total_s"] == pytest.approx(parts)
            assert clip["real_time_factor"] == pytest.approx(parts / clip["audio_s"])
            assert clip["decode_tok_s"] > 0 and clip["prefill_tok_s"] > 0
            assert (clip["encode_s"] == 0) == (name == "genai-int4"), name  # genai: decoder only
        assert ("decode_bound_tok_s" in result) == (name not in ("pytorch-fp32", "pytorch-bnb4"))


def test_exact_mode_encodes_thirty_seconds_whatever_the_clip(quick):
    """Exact mode pads to 30 s, fast mode does not: the encoder's share shows it on short clips."""
    results = json.loads((quick[0] / "bench.json").read_text())["results"]
    short = {name: results[name]["clips"][0] for name in ("fp32-exact", "fp32-fast")}
    assert short["fp32-exact"]["audio_s"] == 5.0
    assert short["fp32-exact"]["encode_s"] > short["fp32-fast"]["encode_s"]


def test_a_missing_dependency_skips_its_configuration_with_the_reason():
    result = measure_in_child(Run("pytorch-bnb4", "measure_pytorch", {}, needs=("no_such_module",)))
    assert result == {"name": "pytorch-bnb4", "status": "skipped",
                      "reason": "no_such_module not installed"}  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seconds", "45"], "--seconds between 0 and 30"),
        (["--threads", "0"], "--threads and --repeats must be ≥ 1"),
        (["--repeats", "0"], "--threads and --repeats must be ≥ 1"),
        (["--audio", "nowhere.wav"], "nowhere.wav does not exist"),
    ],
)
def test_bad_arguments_are_one_line_errors(args, message, tmp_path, capsys):
    assert main(["bench", "--quick", "-o", str(tmp_path / "out"), *args]) == 2
    assert message in cli_error(capsys)


def test_existing_results_are_not_replaced_without_force(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "bench.json").write_text("{}")  # an earlier run's results
    assert main(["bench", "--quick", "-o", str(tmp_path / "out")]) == 2
    assert "already exists; pass --force" in cli_error(capsys)
    mine = tmp_path / "mine"  # not results: refused even with --force, and left alone
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert main(["bench", "--quick", "-o", str(mine), "--force"]) == 2
    assert "is not a tinyaudio bench result" in cli_error(capsys)
    assert (mine / "notes.txt").read_text() == "mine"


def test_targets_name_every_goal_and_never_hide_one(quick):
    """Each performance target gets MET or MISSED with its figure; a configuration the run did
    not measure is said to be missing, not dropped."""
    results = json.loads((quick[0] / "bench.json").read_text())["results"]
    lines = targets(results)
    assert len(lines) == 8, lines
    assert all(line.endswith(("MET", "MISSED")) for line in lines), lines
    genai_10s = next(c for c in results["genai-int4"]["clips"] if c["audio_s"] == 10)
    ours_10s = next(c for c in results["int4-fast"]["clips"] if c["audio_s"] == 10)
    ratio = ours_10s["decode_tok_s"] / genai_10s["decode_tok_s"]
    assert f"{ratio:.2f}" in lines[0] and f"{ours_10s['prompt_tokens']} positions" in lines[0]
    assert ("MET" if ratio >= 1.1 else "MISSED") == lines[0].split()[-1]
    rss = max(c["peak_rss_mb"] for c in results["int4-fast"]["clips"])
    assert f"peak RSS {rss:.0f} MB" in lines[-1]
    partial = {k: v for k, v in results.items() if k not in ("genai-int4", "pytorch-fp32")}
    missing = [line for line in targets(partial) if "not measured in this run" in line]
    assert len(missing) == 4, missing  # genai at 10 s and 30 s, PyTorch for int8 and int4
    nothing = targets({})
    assert len(nothing) == 6 and all("not measured in this run" in line for line in nothing)


def test_cached_bundles_from_an_older_format_are_rebuilt(tmp_path):
    from tinyaudio.bench.bundles import _stale
    from tinyaudio.bundle import FORMAT_VERSION

    bundle = tmp_path / "int4"
    assert not _stale(bundle)  # nothing cached: built as usual
    bundle.mkdir()
    for version, stale in ((FORMAT_VERSION - 1, True), (FORMAT_VERSION, False)):
        (bundle / "manifest.json").write_text(json.dumps({"format_version": version}))
        assert _stale(bundle) == stale


def test_cached_bundles_from_a_changed_recipe_are_rebuilt(tmp_path):
    """An INT4 bundle cached before its recipe changed (the encoder was INT8 then) is rebuilt, and
    so is one whose graphs were quantized otherwise than its recipe says today, or whose ladder
    started at another block than today's default (block 32 was the default once)."""
    from dataclasses import asdict

    from tinyaudio.bench.bundles import _stale
    from tinyaudio.bundle import FORMAT_VERSION
    from tinyaudio.quantize.recipes import block_sizes, ladder

    bundle = tmp_path / "int4"
    bundle.mkdir()
    default = block_sizes("int4", None)[0]
    today = ladder("int4", default)[0]
    recipe = json.loads(json.dumps(asdict(today)))
    graphs = {g: {"quantization": json.loads(json.dumps(today.graph_recipe(g)))}
              for g in ("encoder", "projector", "decoder")}  # fmt: skip
    older_encoder = {**graphs, "encoder": {"quantization": {"method": "int8-dynamic"}}}
    cases = (
        ({**recipe, "encoder": "int8-dynamic"}, graphs, default, True),
        (recipe, older_encoder, default, True),
        (recipe, graphs, None, True),  # built before attempts recorded their block
        (recipe, graphs, default, False),
    )
    for recorded, quantized, first_block, stale in cases:
        gates = {"attempts": [{"recipe": "int4", "block_size": first_block}]}
        manifest = {"format_version": FORMAT_VERSION, "precision": "int4", "recipe": recorded,
                    "graphs": quantized, "gates": gates}  # fmt: skip
        (bundle / "manifest.json").write_text(json.dumps(manifest))
        assert _stale(bundle) == stale

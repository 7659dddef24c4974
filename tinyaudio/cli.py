"""`tinyaudio`: the torch-free command line: transcribe with a bundle, inspect it, list models."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
from pathlib import Path

from tinyaudio.bench.cli import add_parser as add_bench_parser
from tinyaudio.errors import TinyAudioError, run_cli
from tinyaudio.registry import load_registry


def _models(args: argparse.Namespace) -> None:
    registry = load_registry(args.registry)
    print(f"registry: {registry.path}  (default model: {registry.default_model})")
    print("\ncheckpoints (hub, or shipped with tinyaudio):")
    for entry in registry.checkpoints.values():
        source = "(shipped, offline)" if entry.shipped else entry.repo
        print(f"  {entry.name:<28} {source:<34} {entry.projector:<8} {entry.llm}")
        print(f"  {'':<28} {entry.description}")
    print("\nrandom-weight presets (built offline):")
    for preset in registry.presets.values():
        enc, llm = preset.encoder, preset.llm
        print(
            f"  {preset.name:<28} encoder {enc.kind} {enc.num_layers}x{enc.hidden_size}, "
            f"{preset.projector} (any projector), {llm.family} {llm.num_layers}x{llm.hidden_size}"
        )
        print(f"  {'':<28} {preset.description}")


def _transcribe(args: argparse.Namespace) -> int:
    """Every file is tried: one that fails is reported in one line and the rest go on. With
    --output-format / --output-dir each input gets its files, and inputs whose outputs exist are
    skipped (resume) unless --overwrite."""
    from tinyaudio.batch import (
        ModelOptions,
        expand_inputs,
        progress_bar,
        threads_per_job,
        transcribe_many,
    )
    from tinyaudio.runtime.audio import probe_audio
    from tinyaudio.runtime.outputs import FORMATS, output_paths, record, write_outputs

    if args.jobs < 1:
        raise TinyAudioError(f"--jobs must be at least 1, got {args.jobs}")
    writing = args.output_format is not None or args.output_dir is not None
    formats = FORMATS if args.output_format in (None, "all") else (args.output_format,)
    folder = args.output_dir or Path()
    failed: list[Path] = []
    paths = expand_inputs(args.files)

    def report(path: Path, exc: TinyAudioError, write=print) -> None:
        failed.append(path)
        write(f"error: {exc}", file=sys.stderr)
        if args.json and not writing:
            write(json.dumps({"file": str(path), "error": str(exc)}))

    todo, seconds, skipped, claimed = [], 0.0, 0, {}
    for path in paths:  # unreadable files are reported before the model loads
        try:
            info = probe_audio(path)
            targets = output_paths(path, folder, formats).values() if writing else []
            for target in targets:
                if target in claimed:
                    clash = f"{path} and {claimed[target]} would both write {target}"
                    raise TinyAudioError(f"{clash}: rename one or transcribe them apart")
                claimed[target] = path
        except TinyAudioError as exc:
            report(path, exc)
            continue
        if any(t.exists() for t in targets) and not args.overwrite:
            skipped += 1
            continue
        todo.append(path)
        seconds += info.frames / info.samplerate
    if todo:
        if writing:
            folder.mkdir(parents=True, exist_ok=True)
        jobs = min(args.jobs, len(todo))
        timed = args.word_timestamps or (writing and _cuts_cues(args.bundle, formats))
        threads = (args.threads or 2) if args.ray is not None else \
            threads_per_job(args.threads, jobs)  # fmt: skip
        options = ModelOptions(args.bundle, threads, args.provider, args.exact,
                               not args.no_speech_gate, args.prompt, timed, args.vad)  # fmt: skip
        with progress_bar(seconds) as bar:
            if args.ray is None:
                results = transcribe_many(options, todo, jobs, bar.update)
            else:
                from tinyaudio.ray_batch import transcribe_on_ray

                address = None if args.ray == "local" else args.ray
                results = transcribe_on_ray(options, todo, jobs, address, bar.update)
            for path, outcome in results:
                if isinstance(outcome, TinyAudioError):
                    report(path, outcome, bar.write)
                elif writing:
                    targets = output_paths(path, folder, formats)
                    write_outputs(outcome, path, targets, args.word_timestamps)
                elif args.json:
                    line = json.dumps(record(outcome, str(path), args.word_timestamps))
                    bar.write(line, file=sys.stdout)
                else:
                    bar.write(f"{path}: {outcome.text}", file=sys.stdout)
                sys.stdout.flush()
    if skipped:
        print(f"skipped {skipped} of {len(paths)} files: their outputs exist in {folder} "
              "(--overwrite to redo them)", file=sys.stderr)  # fmt: skip
    if failed and len(paths) > 1:
        print(f"error: {len(failed)} of {len(paths)} files failed", file=sys.stderr)
    return 2 if failed else 0


def _cuts_cues(bundle: Path, formats: tuple[str, ...]) -> bool:
    """Subtitle files are cut at pauses from word times whenever the bundle can give them."""
    from tinyaudio.bundle import read_manifest

    try:
        return bool(set(formats) & {"srt", "vtt", "tsv"}) and bool(
            read_manifest(bundle).get("alignment")
        )
    except TinyAudioError:
        return False  # loading the bundle reports it


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(seconds, 60)
    return f"{int(minutes):02d}:{seconds:05.2f}"


def _live(args: argparse.Namespace) -> None:
    from tinyaudio.live.capture import Capture, describe_devices, import_sounddevice, input_device
    from tinyaudio.live.session import LiveTranscriber
    from tinyaudio.live.vad import Segmenter
    from tinyaudio.runtime.audio import probe_audio
    from tinyaudio.runtime.speech import SpeechDetector
    from tinyaudio.runtime.transcribe import Transcriber

    if args.list_devices:
        print(describe_devices(import_sounddevice()) or "no audio input devices")
        return
    if args.bundle is None:
        raise TinyAudioError("tinyaudio live needs a BUNDLE (or --list-devices)")
    detector = SpeechDetector()
    if args.input:  # check the source before the model loads
        probe_audio(args.input)
    else:
        input_device(import_sounddevice(), args.device)
    # The segmenter's VAD already picks the speech: no second check per utterance.
    transcriber = Transcriber.from_bundle(
        args.bundle, args.threads, args.provider, speech_gate=False
    )
    live = LiveTranscriber(transcriber, Segmenter(detector), args.partial_interval)
    capture = Capture()
    if args.input:
        source = capture.replay(args.input, args.pace)
    else:
        source = capture.microphone(args.device)
    show_partials = args.json or sys.stdout.isatty()
    width = shutil.get_terminal_size().columns

    def stop(signum, frame) -> None:  # first Ctrl-C: finish the utterance; second: quit now
        capture.stop()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, stop)
    try:
        with source as device:
            print(f"listening to {device['name']} (Ctrl-C to stop)", file=sys.stderr, flush=True)
            for event in live.run(capture):
                if args.json:
                    print(json.dumps(vars(event)), flush=True)
                elif event.kind == "final":
                    clear = "\r\x1b[2K" if show_partials else ""
                    times = f"[{_clock(event.start)} → {_clock(event.end)}]"
                    print(f"{clear}{times} {event.text}", flush=True)
                elif show_partials:
                    print(f"\r\x1b[2K… {event.text}"[: width + 5], end="", flush=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    if capture.overflows:
        print(f"warning: {capture.overflows} input overflows (audio was dropped)", file=sys.stderr)


def _serve(args: argparse.Namespace) -> None:
    """Everything the user gave is checked before the model loads (seconds on a large bundle)."""
    import asyncio

    from tinyaudio.errors import missing_extra

    try:
        from tinyaudio.serve import server
        from tinyaudio.serve.worker import ModelInfo, ModelWorker
    except ImportError as exc:
        raise missing_extra(exc, "tinyaudio serve", "serve") from None
    from tinyaudio.runtime.transcribe import Transcriber

    if args.wyoming is None and args.http is None:
        args.wyoming, args.http = f"tcp://127.0.0.1:{server.WYOMING_PORT}", "127.0.0.1"
    wyoming = args.wyoming and server.address(args.wyoming, server.WYOMING_PORT, "tcp")
    http = args.http and server.address(args.http, server.HTTP_PORT)
    for name, value, low in (("--timeout", args.timeout, 0.1), ("--max-queue", args.max_queue, 1),
                             ("--max-upload-mb", args.max_upload_mb, 0.001),
                             ("--max-seconds", args.max_seconds, 1)):  # fmt: skip
        if value < low:
            raise TinyAudioError(f"{name} must be at least {low:g}, got {value:g}")
    api_key = args.api_key or os.environ.get("TINYAUDIO_API_KEY")
    if api_key is not None and not api_key.strip():
        raise TinyAudioError("the API key is empty")
    transcriber = Transcriber.from_bundle(args.bundle, args.threads, args.provider)
    source = transcriber.engine.manifest["model"]
    model = ModelInfo(
        name=args.model_name or Path(source["source"]).name,
        description=f"{source['source']} ({source['projector']}, {source['llm_family']}), "
        f"{transcriber.engine.manifest['precision']}",
        languages=args.language,
        max_seconds=args.max_seconds,
    )
    limits = server.Limits(args.timeout, args.max_queue, int(args.max_upload_mb * 1e6))
    worker = ModelWorker(transcriber, limits.timeout, limits.max_queue)
    asyncio.run(server.serve(worker, model, wyoming, http, limits, api_key))


def _info(args: argparse.Namespace) -> None:
    from tinyaudio.bundle import read_manifest, verify_bundle

    manifest = read_manifest(args.bundle)
    model, dims, graphs = manifest["model"], manifest["dims"], manifest["graphs"]
    print(f"bundle {args.bundle}: format {manifest['format_version']}, {manifest['precision']}")
    print(f"model: {model['source']} ({model['encoder']} encoder, {model['projector']}, "
          f"{model['llm_family']} {dims['num_layers']} layers × {dims['llm_hidden']})")  # fmt: skip
    for name, graph in graphs.items():
        size = sum(p.stat().st_size for p in args.bundle.glob(graph["file"] + "*")) / 1e6
        print(f"  {name:<9} {graph['precision']:<32} {size:9.1f} MB")
    if "parity" in manifest:
        decoder = manifest["parity"]["decoder"]
        steps, same = decoder["steps"], decoder["tokens_identical"]
        print(f"export parity: decoder logits {decoder['logits_max_abs']:.1e} max abs over "
              f"{steps} steps, tokens identical: {same}")  # fmt: skip
    alignment = manifest.get("alignment")
    if alignment:
        chosen = alignment["chosen_on"]
        print(f"word timestamps: heads {alignment['heads']}, start error median "
              f"{chosen['start_median_ms']} ms on {chosen['words']} export words")  # fmt: skip
    else:
        print("word timestamps: not available (exported before them, or the model got too few "
              "of the alignment clips' words right)")  # fmt: skip
    if "gates" in manifest:
        attempts = manifest["gates"]["attempts"]
        tried = ", ".join(
            f"{a['recipe']} {'passed' if a['passed'] else 'failed'}" for a in attempts
        )
        print(f"quantization gate: {tried}")
    if args.verify:
        verify_bundle(args.bundle, manifest)
        print(f"checksums: all {len(manifest['files'])} files match")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyaudio", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    transcribe = sub.add_parser("transcribe", help="transcribe audio files with a bundle")
    transcribe.add_argument("bundle", type=Path, help="bundle directory (from tinyaudio-export)")
    files = "audio files (any format) or folders of them"
    transcribe.add_argument("files", nargs="+", metavar="FILE_OR_DIR", help=files)
    transcribe.add_argument("--json", action="store_true", help="one JSON object per file")
    formats = "write each input's transcript as FORMAT files (all: every one; default with "
    formats += "--output-dir) instead of printing"
    transcribe.add_argument("--output-format", choices=["txt", "json", "srt", "vtt", "tsv", "all"],
                            metavar="FORMAT", help=formats)  # fmt: skip
    out = "folder for the output files (default: the current one)"
    transcribe.add_argument("--output-dir", type=Path, metavar="DIR", help=out)
    overwrite = "redo inputs whose output files exist (default: skip them, to resume)"
    transcribe.add_argument("--overwrite", action="store_true", help=overwrite)
    jobs = "worker processes, each with its own model (threads shared out)"
    transcribe.add_argument("--jobs", type=int, default=1, metavar="N", help=jobs)
    words = (
        "word start/end/probability in JSON, per-word timing in vtt (from the decoder's "
        "attention; subtitle cues are cut at pauses whenever the bundle supports it)"
    )
    transcribe.add_argument("--word-timestamps", action="store_true", help=words)
    vad = (
        "windows are the stretches of speech Silero VAD finds, cut at pauses; silence and "
        "noise between them are skipped (default: back-to-back ≤ 30 s windows)"
    )
    transcribe.add_argument("--vad", action="store_true", help=vad)
    ray = (
        "run the files on a Ray cluster (extra [ray]): ADDRESS ('auto', 'ray://host:10001') "
        "or none for a local one; --jobs actors of --threads CPUs each (default 2); bundle and "
        "files must be at the same paths on every node"
    )
    transcribe.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS", help=ray)
    transcribe.add_argument("--prompt", help="replace the instruction (e.g. captioning, QA)")
    transcribe.add_argument("--threads", type=int, help="onnxruntime threads (default: ≤ 4)")
    transcribe.add_argument("--provider", help="execution provider: cpu, cuda, tensorrt, ...")
    exact = "upstream's 30 s padding (token-exact with PyTorch on speech; slower)"
    transcribe.add_argument("--exact", action="store_true", help=exact)
    no_gate = "decode windows with no speech too (parity with PyTorch; invents text on silence)"
    transcribe.add_argument("--no-speech-gate", action="store_true", help=no_gate)
    transcribe.set_defaults(func=_transcribe)
    live = sub.add_parser("live", help="transcribe a microphone (or a replayed file) as you speak")
    live.add_argument("bundle", type=Path, nargs="?", help="bundle directory")
    live.add_argument("--device", help="input device index or name (default: the system's)")
    live.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    live.add_argument("--json", action="store_true", help="one JSON object per partial/final")
    live.add_argument("--input", metavar="FILE", help="replay FILE as if it were the microphone")
    pace = "replay speed for --input: 1 real time (default), 0 no waiting"
    live.add_argument("--pace", type=float, default=1.0, help=pace)
    partial = "re-decode the utterance in progress this often (0: finals only)"
    live.add_argument("--partial-interval", type=float, default=1.0, metavar="S", help=partial)
    live.add_argument("--threads", type=int, help="onnxruntime threads (default: ≤ 4)")
    live.add_argument("--provider", help="execution provider: cpu, cuda, tensorrt, ...")
    live.set_defaults(func=_live)
    serve = sub.add_parser(
        "serve", help="serve a bundle over Wyoming (Home Assistant) and OpenAI-style HTTP"
    )
    serve.add_argument("bundle", type=Path, help="bundle directory")
    wyoming = "Wyoming listener, tcp://HOST:PORT (bare flag: tcp://127.0.0.1:10300)"
    serve.add_argument("--wyoming", nargs="?", const="tcp://127.0.0.1:10300", help=wyoming)
    http = "HTTP listener, HOST:PORT (bare flag: 127.0.0.1:8000); neither flag: both defaults"
    serve.add_argument("--http", nargs="?", const="127.0.0.1:8000", help=http)
    key = "require 'Authorization: Bearer KEY' on HTTP (or set TINYAUDIO_API_KEY)"
    serve.add_argument("--api-key", help=key)
    serve.add_argument("--max-upload-mb", type=float, default=25.0, help="HTTP upload limit")
    timeout = "seconds from a request's arrival to its answer (default 120)"
    serve.add_argument("--timeout", type=float, default=120.0, help=timeout)
    queue = "requests waiting or running before new ones get 'busy' (default 8)"
    serve.add_argument("--max-queue", type=int, default=8, help=queue)
    seconds = "longest Wyoming audio stream, seconds (default 300)"
    serve.add_argument("--max-seconds", type=float, default=300.0, help=seconds)
    serve.add_argument("--model-name", help="the name clients see (default: the model's)")
    languages = "language codes to announce to clients (default: en)"
    serve.add_argument("--language", nargs="+", default=["en"], help=languages)
    serve.add_argument("--threads", type=int, help="onnxruntime threads (default: ≤ 4)")
    serve.add_argument("--provider", help="execution provider: cpu, cuda, tensorrt, ...")
    serve.set_defaults(func=_serve)
    info = sub.add_parser("info", help="summarise a bundle's manifest")
    info.add_argument("bundle", type=Path)
    info.add_argument("--verify", action="store_true", help="check every file's sha256")
    info.set_defaults(func=_info)
    models = sub.add_parser("models", help="list the models in the registry (models.toml)")
    models.add_argument("--registry", help="another models.toml to read")
    models.set_defaults(func=_models)
    add_bench_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_cli(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())

"""tinyaudio-export: FP32 graphs that match PyTorch, quantized bundles that pass their gates."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tinyaudio.bundle import FORMAT_VERSION, read_manifest, verify_bundle
from tinyaudio.errors import TinyAudioError
from tinyaudio.export.loader import load_model
from tinyaudio.export.reference import ReferenceTranscriber
from tinyaudio.quantize.probes import probe_signals
from tinyaudio.runtime.embeddings import TokenEmbeddings
from tinyaudio.runtime.engine import Engine

PROJECTORS = ["mlp", "mosa", "moe", "qformer"]
PRECISIONS = ["fp32", "int8", "int4"]


def ops(path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("projector", PROJECTORS)
def test_every_projector_exports_at_every_precision(make_bundle, projector, precision):
    bundle = make_bundle(precision, projector=projector)
    manifest = read_manifest(bundle)
    verify_bundle(bundle, manifest)
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["precision"] == precision
    assert manifest["model"]["projector_type"] == projector
    assert manifest["audio"]["projector"]["type"] == projector
    listed = set(manifest["files"])
    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert listed == on_disk - {"manifest.json"}
    assert {"tokenizer.json", "encoder.onnx", "projector.onnx", "decoder.onnx"} <= listed
    dims = manifest["dims"]
    decoder = manifest["graphs"]["decoder"]
    inputs = {i["name"]: i["shape"] for i in decoder["inputs"]}
    outputs = {o["name"]: o["shape"] for o in decoder["outputs"]}
    cache = [1, dims["num_kv_heads"], "capacity", dims["head_dim"]]  # heads first, shared
    assert inputs["inputs_embeds"] == [1, "sequence", dims["llm_hidden"]]
    assert inputs["seqlens_k"] == [1] and inputs["total_sequence_length"] == []
    assert outputs["logits"] == [1, dims["vocab_size"]]  # last position only
    for layer in range(dims["num_layers"]):
        for kind in ("key", "value"):
            assert inputs[f"past_{kind}.{layer}"] == cache
            assert outputs[f"present_{kind}.{layer}"] == cache
    encoder_input = manifest["graphs"]["encoder"]["inputs"][0]
    assert encoder_input["name"] == "input_features" and encoder_input["shape"][2] == "frames"
    graph_ops = {name: ops(bundle / f"{name}.onnx") for name in ("encoder", "decoder")}
    if precision == "fp32":
        assert manifest["parity"]["passed"]
        assert "MatMulNBits" not in graph_ops["decoder"]
    else:
        attempts = manifest["gates"]["attempts"]
        assert attempts[-1]["passed"] and not any(a["passed"] for a in attempts[:-1])
        assert manifest["recipe"]["name"] == attempts[-1]["recipe"]
        assert "MatMulNBits" in graph_ops["decoder"] and "Gemm" not in graph_ops["decoder"]
        bits = manifest["graphs"]["decoder"]["quantization"]["bits"]
        assert bits == int(precision[-1])
        encoder_op = {"int8-dynamic": "DynamicQuantizeMatMul", "int4-nbits": "MatMulNBits"}
        if manifest["recipe"]["encoder"] in encoder_op:  # every weight quantized, none left
            assert encoder_op[manifest["recipe"]["encoder"]] in graph_ops["encoder"]
            assert "MatMul" not in graph_ops["encoder"]


@pytest.mark.parametrize("projector", PROJECTORS)
def test_fp32_graphs_match_pytorch(make_bundle, make_checkpoint, projector):
    """The export's own parity figures, and an independent check with transformers' generate."""
    bundle = make_bundle("fp32", projector=projector)
    parity = read_manifest(bundle)["parity"]
    assert parity["decoder"]["logits_max_abs"] <= 1e-4
    assert parity["decoder"]["steps"] >= 8 and parity["decoder"]["tokens_identical"]
    for graph in ("encoder_exact", "encoder_fast", "projector"):
        assert parity[graph]["max_rel"] <= 1e-4, graph

    reference = ReferenceTranscriber(load_model(str(make_checkpoint(projector=projector))))
    engine = Engine.from_bundle(bundle)
    for audio in probe_signals(seed=7).values():
        features, mel_length = reference.features(audio, padded=False)
        rows = reference.audio_embeddings(features, mel_length)
        expected = reference.generate(rows, features.shape[-1], max_new_tokens=12).token_ids
        onnx_rows = engine.audio_rows(features.numpy(), mel_length)
        np.testing.assert_allclose(onnx_rows, rows.numpy(), atol=1e-5)
        assert engine.greedy(rows.numpy(), max_new_tokens=12) == expected


def test_whisper_encoder_exports(make_bundle):
    manifest = read_manifest(make_bundle("fp32", encoder="whisper"))
    assert manifest["model"]["encoder"] == "whisper" and manifest["dims"]["n_mels"] == 80
    assert manifest["parity"]["passed"]


def test_prompt_ids_reproduce_the_chat_template(make_bundle, make_checkpoint):
    manifest = read_manifest(make_bundle("fp32"))
    prompt = manifest["prompt"]
    reference = ReferenceTranscriber(load_model(str(make_checkpoint())))
    for count in (1, 9):
        ids = reference.prompt_ids(count)[0].tolist()
        assert (
            ids == prompt["prefix_ids"] + [prompt["audio_token_id"]] * count + prompt["suffix_ids"]
        )
    assert prompt["stop_ids"] == [151645, 151643] and prompt["audio_token_id"] == 151669
    tokenizer_ids = reference.model.tokenizer.encode(" Transcribe the speech to text")
    assert prompt["suffix_ids"] == tokenizer_ids + prompt["turn_suffix_ids"]


def test_embedding_table_ships_once(make_bundle, make_checkpoint):
    """FP32: rows read from the LM head equal PyTorch's table; no second copy on disk."""
    bundle = make_bundle("fp32")
    manifest = read_manifest(bundle)
    table = load_model(str(make_checkpoint())).language_model.get_input_embeddings().weight
    embeddings = TokenEmbeddings(bundle, manifest["embeddings"])
    ids = [0, 5, 151643, 151669]
    np.testing.assert_array_equal(embeddings(ids), table[ids].numpy())
    table_bytes = table.numel() * 4
    graphs = sum(p.stat().st_size for p in bundle.glob("*.onnx*"))
    assert table_bytes < graphs < 1.2 * table_bytes  # tiny layers, and the table exactly once


@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_quantized_embedding_rows_are_the_lm_head_weights(make_bundle, precision):
    """Dequantized rows equal what MatMulNBits itself computes with the same initializers."""
    bundle = make_bundle(precision)
    manifest = read_manifest(bundle)
    model = onnx.load(str(bundle / "decoder.onnx"))
    head = next(n for n in model.graph.node if "logits" in n.output)
    assert head.op_type == "MatMulNBits"
    hidden = manifest["dims"]["llm_hidden"]
    used = [name for name in head.input if name]
    initializers = [i for i in model.graph.initializer if i.name in used[1:]]
    probe = onnx.helper.make_graph(
        [
            onnx.helper.make_node(
                "MatMulNBits",
                list(head.input),
                ["y"],
                domain="com.microsoft",
                **{a.name: onnx.helper.get_attribute_value(a) for a in head.attribute},
            )
        ],
        "probe",
        [onnx.helper.make_tensor_value_info(head.input[0], onnx.TensorProto.FLOAT, [None, hidden])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        initializers,
    )
    opsets = [onnx.helper.make_opsetid("", 21), onnx.helper.make_opsetid("com.microsoft", 1)]
    session = ort.InferenceSession(
        onnx.helper.make_model(probe, opset_imports=opsets, ir_version=10).SerializeToString()
    )
    lm_head = session.run(None, {head.input[0]: np.eye(hidden, dtype=np.float32)})[0].T
    embeddings = TokenEmbeddings(bundle, manifest["embeddings"])
    ids = np.arange(0, manifest["dims"]["vocab_size"], 997)
    np.testing.assert_allclose(embeddings(ids), lm_head[ids], rtol=1e-6, atol=1e-7)


def test_decoder_writes_the_cache_in_place(make_bundle):
    """Past and present share one buffer per layer: a step writes only its own rows there, the
    buffers never move, and a prefill in chunks equals a prefill in one go."""
    engine = Engine.from_bundle(make_bundle("fp32"))
    assert "GroupQueryAttention" in ops(engine.directory / "decoder.onnx")
    rows = engine.audio_rows(*engine.features(probe_signals()["voiced"], padded=False))
    prompt = engine.prompt_embeds(rows)
    length = prompt.shape[1]
    whole = engine.decoder.new_cache(length + 4)
    pointers = [buffer.ctypes.data for buffer in whole.buffers]
    logits = engine.decoder.forward(prompt, whole).copy()
    assert whole.length == length
    for buffer in whole.buffers:
        assert buffer[:, :, :length].any() and not buffer[:, :, length:].any()
    chunked = engine.decoder.new_cache(length + 4)
    for start in range(0, length, 7):
        chunk_logits = engine.decoder.forward(prompt[:, start : start + 7], chunked)
    np.testing.assert_allclose(chunk_logits, logits, atol=1e-5)
    for a, b in zip(whole.buffers, chunked.buffers, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    engine.decoder.forward(engine.embeddings([int(np.argmax(logits))])[None], whole)
    assert whole.length == length + 1
    assert [buffer.ctypes.data for buffer in whole.buffers] == pointers
    with pytest.raises(TinyAudioError, match="positions"):
        engine.decoder.new_cache(engine.manifest["dims"]["max_positions"] + 1)


def test_damaged_bundles_are_clear_errors(make_bundle, tmp_path):
    import shutil

    bundle = shutil.copytree(make_bundle("fp32"), tmp_path / "copy")
    with (bundle / "projector.onnx.data").open("r+b") as f:
        f.write(b"\x00\x01\x02")
    with pytest.raises(TinyAudioError, match=r"checksum mismatch.*projector\.onnx\.data"):
        verify_bundle(bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    (bundle / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(TinyAudioError, match=r"format version 99.*upgrade"):
        read_manifest(bundle)
    (bundle / "manifest.json").write_text(json.dumps({**manifest, "format_version": 1}))
    with pytest.raises(TinyAudioError, match=r"format version 1, from an older.*export it again"):
        read_manifest(bundle)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    (bundle / "decoder.onnx").unlink()
    with pytest.raises(TinyAudioError, match="missing its decoder graph"):
        read_manifest(bundle)
    (bundle / "manifest.json").write_text("{not json")
    with pytest.raises(TinyAudioError, match="damaged"):
        read_manifest(bundle)

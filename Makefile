# cato: `make example` sets everything up and runs the main job on a real corpus; `make test` runs all tests.
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
CORPORA ?= ../shared/corpora

.PHONY: setup plugin live-deps example test btest pytest bench clean

$(BIN)/cato: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# The native engine: cato's Zeek plugin, built in plugin/build (where cato's Zeek runs and the
# btests find it), against the Zeek that zeek-config names.
plugin:
	test -f plugin/build/Makefile || plugin/configure
	$(MAKE) -C plugin/build -j 2

# tcpreplay (and tcprewrite): the live tests and benchmarks/throughput.py replay captures (tests/livenet.py).
live-deps:
	command -v tcpreplay >/dev/null || apt-get install -y -q tcpreplay || (apt-get update -q && apt-get install -y -q tcpreplay)

setup: $(BIN)/cato plugin live-deps

STUDY   ?= example-study

example: setup
	$(BIN)/cato extract $(CORPORA)/iot-sentinel --features all --depth 10 -o iot-sentinel.parquet
	$(BIN)/python examples/summarize.py iot-sentinel.parquet
	$(BIN)/cato tune $(CORPORA)/iot-sentinel --study $(STUDY) --budget 20 \
		$$(test -e $(STUDY)/study.db && echo --resume)
	$(BIN)/cato report $(STUDY)

btest: setup
	cd tests/btest && PATH=$(abspath $(BIN)):$$PATH btest -c btest.cfg -d -j 2

# Two test files at a time: the suite mostly waits (live replays, timeouts, workers), about a third
# of two cores busy on its own; a file's tests stay in one process, sharing its fixtures.
pytest: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=10

test: btest pytest

bench: setup
	$(BIN)/python benchmarks/extraction_strategies.py --corpus $(CORPORA)/iot-sentinel --corpus $(CORPORA)/ndpi

clean:
	rm -rf $(VENV) tests/btest/.tmp .pytest_cache plugin/build

.PHONY: run test services stop bench chaos fuzz

# Set up and run the whole system (web, worker, beat, bridge, flower) in the foreground.
run:
	bash scripts/run.sh

# Set up and run the whole test suite (unit and integration, against real services).
test:
	bash scripts/test.sh

services:
	bash scripts/services.sh start

stop:
	bash scripts/services.sh stop

# Every benchmark against a stack of its own on free ports, then one table of figures beside
# the baselines and targets (also written to var/bench/latest.md). BENCH_ROWS=200000 for a
# quicker storage fill; `.venv/bin/python -m benchmarks -k NAME` runs some.
bench:
	bash scripts/setup.sh dev
	.venv/bin/python -m benchmarks

# The fault-injection suite at the issue's sizes (CHAOS_SCALE=small for a quick run): it starts
# a stack of its own on free ports, injects faults by process id and prints one table.
chaos:
	bash scripts/setup.sh dev
	CHAOS_SCALE=$${CHAOS_SCALE:-full} .venv/bin/python -m chaos

# Property-based fuzzing of every endpoint at a large budget (FUZZ_EXAMPLES per endpoint
# family, fresh random examples each run; `make test` runs 60 fixed ones): asserts no 5xx.
fuzz:
	bash scripts/setup.sh dev
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-3000} FUZZ_RANDOM=1 .venv/bin/python -m pytest tests/integration/test_fuzz.py -q -s -p no:logging

.PHONY: run test services stop bench chaos

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

# Print the benchmark figures (query times for 10,000 notifications, events/s end to end).
bench:
	bash scripts/setup.sh dev
	.venv/bin/python -m pytest benchmarks -s -p no:warnings -q

# The fault-injection suite at the issue's sizes (CHAOS_SCALE=small for a quick run): it starts
# a stack of its own on free ports, injects faults by process id and prints one table.
chaos:
	bash scripts/setup.sh dev
	CHAOS_SCALE=$${CHAOS_SCALE:-full} .venv/bin/python -m chaos

.PHONY: run test services stop

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

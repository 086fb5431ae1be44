"""The fault-injection suite (`make chaos`, `python -m chaos`).

It starts the whole stack on ports and a data folder of its own (PostgreSQL, Redis and the
Kafka broker through scripts/services.sh; web, worker, bridge and relay through
scripts/process.sh), drives events through the real producer and the REST API v1, injects
faults by process id, and prints one table: for each experiment, the events acknowledged,
the rows expected and found, the missing and duplicated ones, and the seconds to full
recovery.

    stack.py        the backing services and the environment every process shares
    processes.py    the project's processes: start, wait until ready, kill, pause
    faults.py       the faults themselves, each one logged with its time
    workload.py     users, the event stream, the REST client, and counting rows
    report.py       one result per experiment, the table, the JSON for the tests
    objectstore.py  an S3-compatible store on local files: the broker's durable storage
    experiments/    one function per experiment, in the order the issue lists them

CHAOS_SCALE=full gives the issue's sizes; the default (small) runs in `make test`.
CHAOS_BROKER_STORAGE=memory puts the broker on memory storage (as `make run` has it)
instead of the object store.
"""

# The experiments, by name, in the order of the table (chaos/experiments/__init__.py
# maps each to its function).
EXPERIMENTS = ("bridge", "worker", "kafka-down", "web-killed", "relay", "outages", "as-of", "deletion", "poison", "unstorable")

"""The experiments, in the order of the issue's table. Each takes the Context and returns
its Result; a fault it leaves behind (a dead process) is repaired by the runner."""

from __future__ import annotations

from collections.abc import Callable

from chaos.experiments.common import Context
from chaos.experiments.crashes import bridge_killed, relay_killed, worker_killed
from chaos.experiments.groups import group_deletion_race, recipients_as_of_the_action
from chaos.experiments.kafka_down import actions_while_kafka_down, web_killed_while_kafka_down
from chaos.experiments.outages import services_stopped
from chaos.experiments.poison import hostile_messages, unstorable_events
from chaos.report import Result

Experiment = Callable[[Context], Result]

EXPERIMENTS: dict[str, Experiment] = {
    "bridge": bridge_killed,
    "worker": worker_killed,
    "kafka-down": actions_while_kafka_down,
    "web-killed": web_killed_while_kafka_down,
    "relay": relay_killed,
    "outages": services_stopped,
    "as-of": recipients_as_of_the_action,
    "deletion": group_deletion_race,
    "poison": hostile_messages,
    "unstorable": unstorable_events,
}

__all__ = ["EXPERIMENTS", "Context", "Experiment"]

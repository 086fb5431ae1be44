"""What every experiment is handed, and how it ends: wait for the rows, count them."""

from __future__ import annotations

from dataclasses import dataclass

from chaos.faults import FaultLog
from chaos.processes import Cluster
from chaos.report import Result
from chaos.scale import Scale
from chaos.stack import Stack
from chaos.workload import Api, Ledger, count, make_users, wait_idle, wait_stored
from graphspace.models import User


@dataclass
class Context:
    stack: Stack
    cluster: Cluster
    scale: Scale
    run_id: str
    log: FaultLog

    def users(self, experiment: str, *names: str) -> list[User]:
        """Users of this experiment only, in the order named."""
        emails = [f"{name}-{experiment}-{self.run_id}@chaos.test" for name in names]
        by_email = {u.email: u for u in make_users(emails)}
        return [by_email[e] for e in emails]

    def name(self, experiment: str, what: str) -> str:
        """A resource name no other experiment or run uses."""
        return f"chaos-{self.run_id}-{experiment}-{what}"

    def api(self, user: User) -> Api:
        return Api(self.stack.web_url, user.email)


def where_in_the_log(ctx: Context, name: str) -> str:
    """Where the broker keeps the messages that name a missing resource, and where the
    bridge's group has committed: tells a message the broker lost from one the bridge passed."""
    from django.conf import settings
    from kafka import KafkaConsumer, TopicPartition

    needle = name.encode()
    consumer = KafkaConsumer(bootstrap_servers=ctx.stack.kafka, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    committer = KafkaConsumer(bootstrap_servers=ctx.stack.kafka, group_id=settings.KAFKA_CONSUMER_GROUP,
                              enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for topic in settings.KAFKA_TOPICS.values()
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found = [f"{m.topic}[{m.partition}]@{m.offset}" for m in consumer if needle in (m.value or b"")]
        committed = {f"{tp.topic}[{tp.partition}]": committer.committed(tp) for tp in partitions}
    except Exception as error:  # a diagnosis, never a reason to lose the report
        return f"could not read the log for {name}: {error!r}"
    finally:
        consumer.close()
        committer.close()
    return (f"{name} in the broker's log at {', '.join(found) or 'no offset'}; "
            f"the bridge committed {committed}")


def finish(ctx: Context, result: Result, ledger: Ledger, since: float, *, timeout: float | None = None) -> Result:
    """Wait for every expected row (the recovery is counted from `since`), let the pipeline
    run dry, then count what is there."""
    limit = result.limit or ctx.scale.recovery_limit
    done = wait_stored(ledger, timeout=timeout or 2 * limit)
    result.recovery = None if done is None else max(0.0, done - since)
    if not wait_idle(ctx.stack.redis_url(0)):
        result.notes.append("the pipeline was still busy when counted")
    counted = count(ledger)
    result.acknowledged = ledger.acknowledged
    result.expected, result.found = counted.expected, counted.found
    result.missing, result.duplicated, result.unexpected = counted.missing, counted.duplicated, counted.unexpected
    if counted.missing_keys:
        result.notes.append(f"missing e.g. {counted.missing_keys[0]}")
        result.notes.append(where_in_the_log(ctx, counted.missing_keys[0][3]))
    if counted.unexpected_keys:
        result.notes.append(f"unexpected e.g. {counted.unexpected_keys[0]}")
    if ledger.refused:
        result.notes.append(f"{ledger.refused} actions refused while a service was down (not acknowledged, not expected)")
    return result


"""The QoS profiles of the pipeline, named once. Each topic in ``topics.py`` picks one of these."""

from cyclonedds.core import Policy, Qos
from cyclonedds.util import duration

__all__ = ["EVENT", "STATE", "STATUS", "liveliness_lease_s", "status_qos"]

#: How long a node may be silent before readers consider it dead (seconds). Heartbeats come every 1 s.
liveliness_lease_s = 3.0

#: Task data flowing through the pipeline and request/reply traffic: nothing may be lost, so
#: keep-all with back-pressure; volatile, because a late joiner must not replay old work.
EVENT = Qos(
    Policy.Reliability.Reliable(max_blocking_time=duration(seconds=10)),
    Policy.Durability.Volatile,
    Policy.History.KeepAll,
)

#: The latest value per key (inventory per host, result and lifecycle per task): a late joiner,
#: such as a client that subscribes after the fact, gets the current value at once.
STATE = Qos(
    Policy.Reliability.Reliable(max_blocking_time=duration(seconds=10)),
    Policy.Durability.TransientLocal,
    Policy.History.KeepLast(1),
)


def status_qos(lease_s: float = liveliness_lease_s) -> Qos:
    """Node status: the last few per node for late joiners, with automatic liveliness so that a
    reader learns within ``lease_s`` that a node's process is gone (its instance goes
    NOT_ALIVE_NO_WRITERS)."""
    return Qos(
        Policy.Reliability.Reliable(max_blocking_time=duration(seconds=10)),
        Policy.Durability.TransientLocal,
        Policy.History.KeepLast(8),
        Policy.Liveliness.Automatic(lease_duration=duration(seconds=lease_s)),
    )


STATUS = status_qos()

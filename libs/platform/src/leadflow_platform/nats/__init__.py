"""The NATS JetStream bus: streams, publishing, the outbox relay and durable consumers."""

from leadflow_platform.nats.bus import Bus
from leadflow_platform.nats.consumer import (
    Consumer,
    ConsumerSpec,
    Delivery,
    PoisonMessage,
    RetryLater,
)
from leadflow_platform.nats.outbox import OutboxMessage, OutboxRelay, add_to_outbox
from leadflow_platform.nats.streams import StreamSpec, stream_for

__all__ = [
    "Bus",
    "Consumer",
    "ConsumerSpec",
    "Delivery",
    "OutboxMessage",
    "OutboxRelay",
    "PoisonMessage",
    "RetryLater",
    "StreamSpec",
    "add_to_outbox",
    "stream_for",
]

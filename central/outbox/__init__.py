"""Central's outbox: messages to the stores, written in the transaction of the change."""

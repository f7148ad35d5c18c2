"""The store process (gateway layer): runs the edge, keeps the durable outbox, holds the MQTT
session to the broker, receives ticket status from central and serves the store page."""

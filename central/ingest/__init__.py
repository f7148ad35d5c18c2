"""Ingest: MQTT messages from the stores into tickets, stores, devices and values."""

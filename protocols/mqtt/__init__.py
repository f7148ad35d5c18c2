"""The versioned MQTT contract between store gateways and central (protocols layer)."""

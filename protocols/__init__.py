"""Wire formats (protocols layer): pure codecs and the versioned MQTT contract. No I/O."""

"""Every telemetry sample, stored in bulk, and the HACCP temperature log of refrigerated devices."""

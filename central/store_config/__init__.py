"""Desired store configuration: rule overrides per store, versioned, pushed, acknowledged."""

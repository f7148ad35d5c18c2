"""Stores, their devices and the latest value of every device point."""

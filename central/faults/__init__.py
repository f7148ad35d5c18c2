"""The latest known state of each device fault (faults domain)."""

"""Tickets: one per device fault, prioritised, dispatched, tracked to closure."""

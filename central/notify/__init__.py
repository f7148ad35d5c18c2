"""Notifications (notify domain): ticket changes, SLA warnings and escalations to people, via pluggable channels."""

"""Technicians: skills, region, availability, and the load used for dispatch."""

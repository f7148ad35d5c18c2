"""SLA domain: priority rules, SLA policies, store calendars, clocks, warnings and escalation."""

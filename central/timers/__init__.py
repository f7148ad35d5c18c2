"""Durable timers (timers domain): deadlines in the database, fired once by any central worker."""

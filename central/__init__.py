"""Central: the dispatcher server (ingest, tickets, dispatch, users, handheld app).

Public entry points: `central.settings.CentralSettings`, `central.app.create_app`,
`central.app.run`, `central.db.migrate`, `central.seed.load_seed`.
"""

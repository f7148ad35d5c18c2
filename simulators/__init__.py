"""Simulated store devices (simulators layer): profile-driven Modbus slaves with behaviour models,
injectable faults, Modbus TCP and RTU (pty) servers, and an HTTP control API.

Entry points: `simulators.config.SimulatorConfig.load(path)` and
`simulators.runner.run_simulators(config, ready=...)`; in-process, `simulators.runner.Simulators`
and `simulators.simulation.Simulation`.
"""

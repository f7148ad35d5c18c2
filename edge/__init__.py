"""Device I/O at the store (edge layer): transports, bus schedulers, decoding, rules, faults."""

"""Thresholds: rule overrides per device model, store and device, resolved by inheritance,
versioned chain-wide, compiled into each store's desired configuration."""

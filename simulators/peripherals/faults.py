"""Which simulator faults apply to serial peripherals (simulators layer). Pure data.

Printers take the paper, cover and cutter faults, validators the jam and stacker faults,
both can go silent (`offline`). The framing faults of the Modbus servers do not apply.
"""

from __future__ import annotations

from simulators.faults import Fault

PRINTER_FAULTS = frozenset({Fault.PAPER_NEAR_END, Fault.PAPER_END, Fault.PRINTER_COVER_OPEN, Fault.CUTTER_ERROR})
VALIDATOR_FAULTS = frozenset({Fault.BILL_JAM, Fault.STACKER_FULL})
ALIASES = {"cover_open": Fault.PRINTER_COVER_OPEN.value}  # the codec's condition name


def peripheral_faults(kind: str) -> frozenset[Fault]:
    """The faults a peripheral of this profile kind can be given (plus going silent)."""
    return (PRINTER_FAULTS if kind == "printer" else VALIDATOR_FAULTS) | {Fault.OFFLINE}

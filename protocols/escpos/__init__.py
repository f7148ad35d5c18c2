"""ESC/POS codec (protocols layer): real-time status `DLE EOT n`, recovery `DLE ENQ n`. Pure."""

from protocols.escpos.errors import EscPosError, StatusByteError
from protocols.escpos.status import (
    AnyStatus,
    ErrorStatus,
    OfflineCauseStatus,
    PaperStatus,
    PrinterCondition,
    PrinterConditions,
    PrinterStatus,
    RecoverMode,
    StatusKind,
    build_recover_request,
    build_status_request,
    parse_error_status,
    parse_offline_cause,
    parse_paper_status,
    parse_printer_status,
    parse_status,
    printer_conditions,
)

__all__ = [
    "AnyStatus",
    "ErrorStatus",
    "EscPosError",
    "OfflineCauseStatus",
    "PaperStatus",
    "PrinterCondition",
    "PrinterConditions",
    "PrinterStatus",
    "RecoverMode",
    "StatusByteError",
    "StatusKind",
    "build_recover_request",
    "build_status_request",
    "parse_error_status",
    "parse_offline_cause",
    "parse_paper_status",
    "parse_printer_status",
    "parse_status",
    "printer_conditions",
]

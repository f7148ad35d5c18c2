"""Printer and bill validator served on ptys, talked to through pyserial, decoded by the codecs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import serial

from protocols.cctalk import (
    BillEventCode,
    EventTracker,
    build_read_buffered_bill_events,
    build_simple_poll,
    parse_buffered_events,
    parse_reply,
)
from protocols.escpos import PrinterCondition, StatusKind, build_status_request, printer_conditions
from simulators.errors import SimulatorError
from simulators.peripherals import PeripheralSerialServer, SimulatedBillValidator, SimulatedPrinter


def transact(link: Path, request: bytes, expect: int, *, timeout: float = 0.5, chunks: int = 1) -> bytes:
    """Write `request` (in `chunks` pieces, as a slow UART would) and read `expect` bytes back."""
    with serial.Serial(str(link), baudrate=9600, timeout=timeout) as port:
        step = max(1, len(request) // chunks)
        for i in range(0, len(request), step):
            port.write(request[i : i + step])
            port.flush()
            if chunks > 1:
                time.sleep(0.005)
        return bytes(port.read(expect))


async def exchange(link: Path, request: bytes, expect: int, *, timeout: float = 0.5, chunks: int = 1) -> bytes:
    return await asyncio.to_thread(transact, link, request, expect, timeout=timeout, chunks=chunks)


@pytest.fixture
def printer() -> SimulatedPrinter:
    return SimulatedPrinter()


@pytest.fixture
def validator() -> SimulatedBillValidator:
    return SimulatedBillValidator(address=40)


@pytest.fixture
async def links(
    tmp_path: Path, printer: SimulatedPrinter, validator: SimulatedBillValidator
) -> AsyncIterator[tuple[Path, Path]]:
    async with (
        PeripheralSerialServer(printer, link=tmp_path / "dev" / "ttyPRINTER") as p,
        PeripheralSerialServer(validator, link=tmp_path / "dev" / "ttyBILL") as v,
    ):
        yield p.link, v.link


async def test_printer_status_over_pty(links: tuple[Path, Path], printer: SimulatedPrinter) -> None:
    printer_link, _ = links
    request = b"".join(build_status_request(n) for n in StatusKind)
    assert await exchange(printer_link, request, 4) == b"\x12\x12\x12\x12"
    printer.state.paper_near_end = True
    printer.state.cover_open = True
    answers = await exchange(printer_link, b"Receipt line\n" + request, 4, chunks=4)
    conditions = printer_conditions(dict(zip(StatusKind, answers, strict=True)))
    assert conditions.active == {PrinterCondition.PAPER_NEAR_END, PrinterCondition.COVER_OPEN, PrinterCondition.OFFLINE}


async def test_validator_over_pty(links: tuple[Path, Path], validator: SimulatedBillValidator) -> None:
    _, bill_link = links
    ack = await exchange(bill_link, build_simple_poll(40), 5)
    assert ack == bytes([1, 0, 40, 0, 215])
    assert parse_reply(ack, device=40).data == b""

    tracker = EventTracker()
    poll = build_read_buffered_bill_events(40)
    tracker.update(parse_buffered_events(await exchange(bill_link, poll, 16), device=40))
    validator.inject(BillEventCode.UNSAFE_JAM)
    validator.inject(BillEventCode.STACKER_FULL)
    reply = await exchange(bill_link, poll, 16, chunks=3)
    update = tracker.update(parse_buffered_events(reply, device=40))
    assert [r.bill_event for r in update.new] == [BillEventCode.UNSAFE_JAM, BillEventCode.STACKER_FULL]


async def test_validator_silent_for_other_address_and_drops_partial_frames(
    tmp_path: Path, validator: SimulatedBillValidator
) -> None:
    async with PeripheralSerialServer(validator, link=tmp_path / "ttyBILL", inter_byte_timeout_s=0.05) as server:
        assert await exchange(server.link, build_simple_poll(2), 5, timeout=0.2) == b""
        # Half a frame, then silence longer than the inter-byte timeout: dropped, line resyncs.
        assert await exchange(server.link, build_simple_poll(40)[:3], 5, timeout=0.2) == b""
        assert server.stats.incomplete == 1
        assert await exchange(server.link, build_simple_poll(40), 5) == bytes([1, 0, 40, 0, 215])
        assert validator.ignored == 1


async def test_link_removed_on_exit_and_foreign_file_refused(tmp_path: Path, printer: SimulatedPrinter) -> None:
    link = tmp_path / "ttyP"
    async with PeripheralSerialServer(printer, link=link):
        assert link.is_symlink()
    assert not link.exists() and not link.is_symlink()
    link.write_text("not a tty")
    with pytest.raises(SimulatorError, match="not a symlink"):
        async with PeripheralSerialServer(printer, link=link):
            pass

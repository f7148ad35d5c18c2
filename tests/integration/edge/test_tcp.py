"""The TCP transports against pymodbus 3.16 servers (an independent Modbus implementation)
and against small asyncio servers that misbehave on purpose. Free ports only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge.clock import SystemClock
from edge.config import BusConfig, DeviceConfig, EdgeConfig
from edge.errors import BadFrame, DeviceException, DeviceTimeout, LinkDown
from edge.runtime import Edge
from edge.transport import RtuOverTcpTransport, TcpTransport
from protocols.modbus import tcp as mbap
from protocols.modbus.pdu import Table, build_read_request, build_read_response, parse_read_response
from protocols.modbus.rtu import encode_frame
from tests.unit.edge.fakes import REGISTRY, RecordingSink, quality_of, running, value_of, wait_until

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # its simulator logs deprecation chatter

LANE_INPUTS = [2, 0x1A, 0x04, 0x08, 0x0C, 14, 0, 0, 0, 0, 0x0001, 0x86A0]  # attendant needed, printer offline...


def lane_device(unit: int) -> SimDevice:
    return SimDevice(
        id=unit,
        simdata=(
            [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
            [SimData(0, values=[True] + [False] * 15, datatype=DataType.BITS)],
            [SimData(256, values=[153, 0, 0x8000], datatype=DataType.REGISTERS)],
            [SimData(0, values=LANE_INPUTS, datatype=DataType.REGISTERS)],
        ),
    )


@contextlib.asynccontextmanager
async def pymodbus_server(
    framer: FramerType = FramerType.SOCKET, port: int = 0
) -> AsyncIterator[tuple[ModbusTcpServer, int]]:
    server = ModbusTcpServer([lane_device(1), lane_device(2)], address=("127.0.0.1", port), framer=framer)
    await server.serve_forever(background=True)
    try:
        listener = server.transport
        assert isinstance(listener, asyncio.Server)  # pymodbus keeps the asyncio listener here
        yield server, listener.sockets[0].getsockname()[1]
    finally:
        await server.shutdown()


async def read(
    transport: TcpTransport | RtuOverTcpTransport, unit: int, table: Table, address: int, count: int
) -> list[int]:
    pdu = await transport.request(unit, build_read_request(table, address, count), 1.0)
    return parse_read_response(table, count, pdu)


async def test_modbus_tcp_reads_every_table_from_pymodbus() -> None:
    async with pymodbus_server() as (_, port):
        transport = TcpTransport("127.0.0.1", port)
        await transport.open()
        try:
            assert await read(transport, 1, Table.HOLDING, 256, 3) == [153, 0, 0x8000]
            assert await read(transport, 2, Table.INPUT, 0, 12) == LANE_INPUTS
            assert await read(transport, 1, Table.DISCRETE, 0, 3) == [1, 0, 0]
            assert await read(transport, 1, Table.COIL, 0, 16) == [0] * 16
            with pytest.raises(DeviceException) as caught:
                await read(transport, 1, Table.HOLDING, 300, 1)
            assert caught.value.code == 0x02
            assert await read(transport, 1, Table.HOLDING, 256, 1) == [153]  # the connection survived
        finally:
            await transport.close()


async def test_rtu_over_tcp_against_pymodbus_rtu_framer() -> None:
    async with pymodbus_server(FramerType.RTU) as (_, port):
        transport = RtuOverTcpTransport("127.0.0.1", port)
        await transport.open()
        try:
            assert await read(transport, 2, Table.HOLDING, 256, 3) == [153, 0, 0x8000]
            assert await read(transport, 1, Table.INPUT, 10, 2) == [0x0001, 0x86A0]
            with pytest.raises(DeviceException):
                await read(transport, 1, Table.INPUT, 40, 1)
        finally:
            await transport.close()


async def test_edge_polls_sco_lanes_from_pymodbus() -> None:
    async with pymodbus_server() as (_, port):
        bus = BusConfig(
            name="lanes",
            transport="tcp",
            host="127.0.0.1",
            tcp_port=port,
            poll_interval_s=0.1,
            devices=[DeviceConfig(id=f"lane-{u}", unit=u, profile="storeguard-sco-lane") for u in (1, 2)],
        )
        sink = RecordingSink()
        async with running(Edge(EdgeConfig(buses=[bus]), REGISTRY, sink, SystemClock())) as edge:
            await wait_until(lambda: len(sink.snapshots) >= 4)
            metrics = edge.metrics()
    lane = sink.latest("lane-2")
    assert lane.online
    assert value_of(lane, "lane_state") == "attendant_needed"
    assert value_of(lane, "printer_offline") is True  # 0x1A bit 3
    assert value_of(lane, "printer_cover_open") is True  # 0x04 bit 2
    assert value_of(lane, "printer_cutter_error") is True  # 0x08 bit 3
    assert value_of(lane, "paper_near_end") is True and value_of(lane, "paper_end") is False
    assert value_of(lane, "bill_event") == "stacker_full"
    assert value_of(lane, "transactions") == 100_000
    assert value_of(lane, "scanner_ok") is True and quality_of(lane, "transactions") == "good"
    assert {("printer_cutter_error", "raised"), ("paper_near_end", "raised"), ("bill_stacker_full", "raised")} <= set(
        sink.codes("lane-1")
    )
    assert metrics.buses[0].requests.responses >= 4 * 2
    assert metrics.buses[0].requests.requests == metrics.buses[0].requests.responses


async def test_modbus_tcp_reconnects_after_the_server_restarts() -> None:
    async with pymodbus_server() as (_, port):
        transport = TcpTransport("127.0.0.1", port, reconnect_delay=0.05, reconnect_max=0.05)
        await transport.open()
        assert await read(transport, 1, Table.HOLDING, 256, 1) == [153]
    await asyncio.sleep(0.05)
    with pytest.raises((LinkDown, DeviceTimeout)):
        await read(transport, 1, Table.HOLDING, 256, 1)
    with pytest.raises(LinkDown):
        await read(transport, 1, Table.HOLDING, 256, 1)  # refused, or inside the reconnect delay
    async with pymodbus_server(port=port):
        await asyncio.sleep(0.06)
        assert await read(transport, 1, Table.HOLDING, 256, 1) == [153]
    await transport.close()


# --- misbehaving servers ---------------------------------------------------------------------

Reply = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(reply: Reply, frame_size: int) -> AsyncIterator[int]:
    """A TCP server that hands each ``frame_size``-byte request to ``reply``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reply(await reader.readexactly(frame_size), writer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_modbus_tcp_skips_answers_to_earlier_transactions() -> None:
    async def reply(frame: bytes, writer: asyncio.StreamWriter) -> None:
        tid, unit, _ = mbap.decode_frame(frame)
        writer.write(mbap.encode_frame(tid - 1, unit, build_read_response(Table.HOLDING, [666])))  # stale
        writer.write(mbap.encode_frame(tid, unit, build_read_response(Table.HOLDING, [tid])))

    async with raw_server(reply, 12) as port:
        transport = TcpTransport("127.0.0.1", port)
        await transport.open()
        assert await read(transport, 1, Table.HOLDING, 0, 1) == [1]
        assert await read(transport, 1, Table.HOLDING, 0, 1) == [2]
        assert transport.stale_responses == 2
        await transport.close()


async def test_modbus_tcp_answers_in_pieces_and_several_in_one_segment() -> None:
    """The receive path cuts frames from a buffer: byte by byte, or a stale and the awaited answer at once."""
    async def reply(frame: bytes, writer: asyncio.StreamWriter) -> None:
        tid, unit, _ = mbap.decode_frame(frame)
        answer = mbap.encode_frame(tid, unit, build_read_response(Table.HOLDING, [tid, 0x8000]))
        if tid % 2:
            for i in range(len(answer)):
                writer.write(answer[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0.001)
        else:
            writer.write(mbap.encode_frame(tid - 1, unit, build_read_response(Table.HOLDING, [6, 6])) + answer)

    async with raw_server(reply, 12) as port:
        transport = TcpTransport("127.0.0.1", port)
        await transport.open()
        for tid in range(1, 5):
            assert await read(transport, 1, Table.HOLDING, 0, 2) == [tid, 0x8000]
        assert transport.stale_responses == 2
        await transport.close()


async def test_modbus_tcp_silence_truncation_and_close() -> None:
    """Silence is a timeout and the late answer is skipped; a frame cut short is a bad frame on a
    connection started afresh; a peer that hangs up is a lost link."""
    replies = iter(["late", "good", "truncated", "good", "close"])

    async def reply(frame: bytes, writer: asyncio.StreamWriter) -> None:
        tid, unit, _ = mbap.decode_frame(frame)
        answer = mbap.encode_frame(tid, unit, build_read_response(Table.HOLDING, [tid]))
        kind = next(replies)
        if kind == "late":
            await asyncio.sleep(0.15)
        if kind == "truncated":
            answer = answer[:-1]
        if kind == "close":
            writer.close()
            return
        writer.write(answer)

    async with raw_server(reply, 12) as port:
        transport = TcpTransport("127.0.0.1", port, reconnect_delay=0.01)
        await transport.open()
        request = build_read_request(Table.HOLDING, 0, 1)
        with pytest.raises(DeviceTimeout):
            await transport.request(1, request, 0.05)
        await asyncio.sleep(0.15)
        assert await read(transport, 1, Table.HOLDING, 0, 1) == [2]
        assert transport.stale_responses == 1
        with pytest.raises(BadFrame, match="truncated"):
            await transport.request(1, request, 0.05)
        assert await read(transport, 1, Table.HOLDING, 0, 1) == [4]  # on a fresh connection
        with pytest.raises(LinkDown, match="closed by the peer"):
            await read(transport, 1, Table.HOLDING, 0, 1)
        await transport.close()


async def test_modbus_tcp_wrong_unit_and_bad_header() -> None:
    replies = iter(["wrong_unit", "bad_protocol", "good"])

    async def reply(frame: bytes, writer: asyncio.StreamWriter) -> None:
        tid, unit, _ = mbap.decode_frame(frame)
        kind = next(replies)
        body = build_read_response(Table.HOLDING, [7])
        if kind == "wrong_unit":
            writer.write(mbap.encode_frame(tid, unit + 1, body))
        elif kind == "bad_protocol":
            writer.write(b"\x00\x01\x00\x05\x00\x05\x01" + body)
        else:
            writer.write(mbap.encode_frame(tid, unit, body))

    async with raw_server(reply, 12) as port:
        transport = TcpTransport("127.0.0.1", port, reconnect_delay=0.01)
        await transport.open()
        with pytest.raises(BadFrame, match="from unit 2"):
            await read(transport, 1, Table.HOLDING, 0, 1)
        with pytest.raises(BadFrame, match="protocol id"):
            await read(transport, 1, Table.HOLDING, 0, 1)
        assert await read(transport, 1, Table.HOLDING, 0, 1) == [7]  # on a fresh connection
        await transport.close()


async def test_edge_counts_and_survives_crc_errors_over_rtu_over_tcp() -> None:
    count = 0

    async def reply(frame: bytes, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        count += 1
        unit = frame[0]
        values = [42] if frame[1] == 0x03 else [1]
        table = Table.HOLDING if frame[1] == 0x03 else Table.DISCRETE
        answer = encode_frame(unit, build_read_response(table, values))
        if count % 3 == 0:
            answer = answer[:-1] + bytes([answer[-1] ^ 0x55])
        writer.write(answer)

    async with raw_server(reply, 8) as port:
        bus = BusConfig(
            name="tunnel",
            transport="rtu_over_tcp",
            host="127.0.0.1",
            tcp_port=port,
            poll_interval_s=0.05,
            devices=[DeviceConfig(id="case-1", unit=4, profile="dixell-xr75cx")],
        )
        sink = RecordingSink()
        async with running(Edge(EdgeConfig(buses=[bus]), REGISTRY, sink, SystemClock())) as edge:
            await wait_until(lambda: len(sink.snapshots) >= 3)
            metrics = edge.metrics()
    device = metrics.devices[0]
    assert device.requests.crc_errors >= 3 and device.requests.retries == device.requests.crc_errors
    assert device.failed_polls == 0 and device.online
    assert value_of(sink.latest("case-1"), "air_temp") == 4.2

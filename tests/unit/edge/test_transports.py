"""The in-memory transport and the RTU response framing, without sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from edge.clock import FakeClock
from edge.errors import BadCrc, BadFrame, DeviceException, DeviceTimeout, LinkDown
from edge.transport import InMemoryTransport, check_response
from edge.transport.rtu import RxBuffer, receive_response, response_frame_length
from protocols.modbus.pdu import Table, build_exception, build_read_request, build_read_response
from protocols.modbus.rtu import encode_frame

READ_2 = build_read_request(Table.HOLDING, 256, 2)
ANSWER = build_read_response(Table.HOLDING, [153, 7])


async def test_in_memory_answers_and_times_out_on_the_clock() -> None:
    clock = FakeClock()
    transport = InMemoryTransport(lambda unit, pdu: ANSWER if unit == 1 else None, clock)
    with pytest.raises(LinkDown):
        await transport.request(1, READ_2, 0.5)
    await transport.open()
    assert await transport.request(1, READ_2, 0.5) == ANSWER
    task = asyncio.create_task(transport.request(2, READ_2, 0.5))
    await clock.run_for(0.49)
    assert not task.done()
    await clock.run_for(0.01)
    with pytest.raises(DeviceTimeout):
        await task
    assert transport.sent == [(1, READ_2), (2, READ_2)]


async def test_in_memory_latency_beyond_the_timeout_is_a_timeout() -> None:
    clock = FakeClock()
    transport = InMemoryTransport(lambda unit, pdu: ANSWER, clock, latency=1.0)
    await transport.open()
    task = asyncio.create_task(transport.request(1, READ_2, 0.5))
    await clock.run_for(1)
    with pytest.raises(DeviceTimeout):
        await task


def test_check_response_raises_the_exception_code() -> None:
    with pytest.raises(DeviceException) as caught:
        check_response(READ_2, build_exception(0x03, 0x02))
    assert (caught.value.function, caught.value.code) == (3, 2)
    assert "illegal data address" in str(caught.value)
    with pytest.raises(BadFrame):
        check_response(READ_2, build_read_response(Table.INPUT, [1, 2]))
    with pytest.raises(BadFrame):
        check_response(READ_2, b"")


def test_frame_length_follows_the_request() -> None:
    assert response_frame_length(READ_2, b"") == 1 + 6 + 2
    assert response_frame_length(READ_2, b"\x01\x83") == 5
    assert response_frame_length(build_read_request(Table.COIL, 0, 10), b"\x01\x01") == 1 + 4 + 2


def scripted(chunks: Sequence[bytes | None]):  # type: ignore[no-untyped-def]
    """A Receive that hands out ``chunks`` in order; None = silence until the timeout."""
    queue = list(chunks)

    async def receive(timeout: float) -> bytes:
        if not queue or queue[0] is None:
            if queue:
                queue.pop(0)
            await asyncio.sleep(timeout)
            raise TimeoutError
        chunk = queue.pop(0)
        assert chunk is not None
        return chunk

    return receive


async def frame_of(chunks: Sequence[bytes | None], unit: int = 5, timeout: float = 0.2) -> bytes:
    return await receive_response(scripted(chunks), unit, READ_2, timeout=timeout, silence=0.02)


async def test_rtu_response_in_pieces() -> None:
    frame = encode_frame(5, ANSWER)
    assert await frame_of([frame[:1], frame[1:4], frame[4:]]) == ANSWER


async def test_rtu_exception_response_is_five_bytes() -> None:
    with pytest.raises(DeviceException) as caught:
        await frame_of([encode_frame(5, build_exception(0x03, 0x04))])
    assert caught.value.code == 4


async def test_rtu_crc_mismatch() -> None:
    frame = bytearray(encode_frame(5, ANSWER))
    frame[4] ^= 0x40
    with pytest.raises(BadCrc):
        await frame_of([bytes(frame)])


async def test_rtu_wrong_unit() -> None:
    with pytest.raises(BadFrame, match="from unit 6, expected unit 5"):
        await frame_of([encode_frame(6, ANSWER)])


async def test_rtu_wrong_function() -> None:
    with pytest.raises(BadFrame, match="does not answer"):
        await frame_of([encode_frame(5, build_read_response(Table.INPUT, [1, 2]))])


async def test_rtu_truncated_frame_is_detected_by_the_silence_not_the_timeout() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(BadFrame, match=r"truncated .*: 5 of 9 bytes"):
        await frame_of([encode_frame(5, ANSWER)[:5], None], timeout=2.0)
    assert loop.time() - started < 1.0


async def test_rtu_silence_is_a_timeout_and_eof_is_link_down() -> None:
    with pytest.raises(DeviceTimeout):
        await frame_of([None], timeout=0.05)
    with pytest.raises(LinkDown):
        await frame_of([b""])


async def test_rx_buffer_delivers_drops_and_closes() -> None:
    buffer = RxBuffer()
    buffer.feed(b"\x01\x02")
    assert buffer.drop() == 2
    with pytest.raises(TimeoutError):
        await buffer.receive(0.01)
    asyncio.get_running_loop().call_soon(buffer.feed, b"\x03")
    assert await buffer.receive(1.0) == b"\x03"
    buffer.close()
    assert await buffer.receive(1.0) == b""

"""A client stream cut short is never taken for a whole one, over real gRPC on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from runtime import errors
from runtime.streams import sent_to_the_end

METHOD = "/tests.Streams/Send"
ROUNDS = 120
MESSAGES = 3


class _SenderGoneError(Exception):
    """What a sender's source raises when it stops (the gateway's HTTP client left)."""


@dataclass
class _Ends:
    """How the server's handler saw each call's stream end, by the call's first message."""

    whole: set[bytes] = field(default_factory=set)
    cut: set[bytes] = field(default_factory=set)


async def _serve(ends: _Ends) -> tuple[grpc.aio.Server, int]:
    async def send(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
        received: list[bytes] = []
        try:
            async for message in sent_to_the_end(aiter(requests), context):
                received.append(message)
        except (errors.ApiError, asyncio.CancelledError):
            ends.cut.add(received[0] if received else b"")
            raise
        ends.whole.add(received[0])
        return b"%d" % len(received)

    server = grpc.aio.server()
    handler = grpc.stream_unary_rpc_method_handler(send)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("tests.Streams", {"Send": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def _sent(call: grpc.aio.StreamUnaryMultiCallable, name: bytes, cut: bool) -> str:
    async def messages() -> AsyncIterator[bytes]:
        yield name
        for _ in range(MESSAGES - 1):
            await asyncio.sleep(0)
            yield b"x" * 1000
        await asyncio.sleep(0.005)  # the server is waiting for the next message
        if cut:
            raise _SenderGoneError  # grpc.aio cancels the call

    try:
        return (await call(messages(), timeout=10)).decode()
    except asyncio.CancelledError:
        return "CANCELLED"


async def test_a_stream_its_sender_cut_never_ends_as_a_whole_one_and_a_whole_one_always_does() -> (
    None
):
    ends = _Ends()
    server, port = await _serve(ends)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.stream_unary(METHOD)
            answers = {}
            for start in range(0, ROUNDS, 8):  # some at once: the server is busier
                names = [b"call-%03d" % n for n in range(start, start + 8)]
                results = await asyncio.gather(
                    *(_sent(call, name, cut=n % 2 == 0) for n, name in enumerate(names, start))
                )
                answers.update(zip(names, results, strict=True))
        await asyncio.sleep(0.2)  # the last cancels have reached the handlers
    finally:
        await server.stop(None)

    cut = {name for n, name in enumerate(sorted(answers)) if n % 2 == 0}
    assert {answers[name] for name in cut} == {"CANCELLED"}
    assert {answers[name] for name in set(answers) - cut} == {str(MESSAGES)}
    assert ends.whole == set(answers) - cut
    assert not ends.cut & ends.whole

"""Byte streams read in pieces (uploads through the gateway and into ingest), and the
client streams they arrive in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

import grpc

from runtime import errors

Message = TypeVar("Message")


async def prepended(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`head` (bytes already read from a stream, to see what it is), then the rest of it."""
    if head:
        yield head
    async for chunk in rest:
        yield chunk


def stream_cut() -> errors.ApiError:
    return errors.ApiError(
        grpc.StatusCode.CANCELLED,
        "the request stream was cut before its sender ended it: nothing of it was kept",
        reason="STREAM_CUT",
    )


async def sent_to_the_end(
    messages: AsyncIterator[Message], context: grpc.aio.ServicerContext
) -> AsyncIterator[Message]:
    """The messages of a client stream, ending only where its sender ended it.

    grpc.aio ends the messages of a stream cut short (its client cancelled the call, or the
    connection was lost) as it ends a whole one; the cancel reaches the handler a moment
    later, after it may have taken what it had for all there is. So the end is made sure of
    before it is passed on: the server's initial metadata is sent, which fails on a call
    that has ended; the handler must not have sent it before. A cut stream raises
    `stream_cut()` here (or the handler is cancelled)."""
    async for message in messages:
        yield message
    try:
        await context.send_initial_metadata(())
    except grpc.aio.UsageError:
        raise  # the handler sent its metadata already: the end cannot be made sure of so
    except grpc.aio.BaseError as failed:  # the call's batch failed, or the server stops
        raise stream_cut() from failed
    if context.cancelled():
        raise stream_cut()

"""The reference of the gateway bench: the least a REST front of the drift service can do.
One Starlette route, `GET /v1/customers/{customer}/driftConfig`, forwarded over one grpc.aio
channel to `GetDriftConfig` with the caller's Authorization, its reply as JSON. No auth
check, validation, tracing, request ids, caching headers, compression or rate limits.

    DRIFT_TARGET=127.0.0.1:50052 python -m uvicorn bench.passthrough:app --port 8090
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from upstream.drift.v1 import drift_service_pb2, drift_service_pb2_grpc

stubs: list[drift_service_pb2_grpc.DriftServiceStub] = []


async def drift_config(request: Request) -> JSONResponse:
    name = f"customers/{request.path_params['customer']}/driftConfig"
    reply = await stubs[0].GetDriftConfig(
        drift_service_pb2.GetDriftConfigRequest(name=name),
        metadata=(("authorization", request.headers.get("authorization", "")),),
        timeout=10,
    )
    return JSONResponse(json_format.MessageToDict(reply))


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    channel = grpc.aio.insecure_channel(os.environ["DRIFT_TARGET"])
    stubs.append(drift_service_pb2_grpc.DriftServiceStub(channel))
    yield
    await channel.close()


async def healthz(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/v1/customers/{customer}/driftConfig", drift_config),
        Route("/healthz", healthz),
    ],
    lifespan=lifespan,
)

"""DriftService over gRPC: a thin adapter between the contract and the domain and store."""

from __future__ import annotations

import dataclasses

import grpc
from google.protobuf import timestamp_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime import errors, names
from runtime.auth import require_identity
from runtime.server import ServiceDefinition
from runtime.settings import Settings
from runtime.updates import mask_paths
from services.drift.config import DetectionConfig, violations
from services.drift.store import DriftStore, StoredConfig
from upstream.drift.v1 import drift_service_pb2, drift_service_pb2_grpc, resources_pb2

CONFIG_NAME = "customers/{customer}/driftConfig"
CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(DetectionConfig))


def config_message(customer: str, stored: StoredConfig) -> resources_pb2.DriftConfig:
    values = dataclasses.asdict(stored.config)
    metrics = [resources_pb2.Metric.Value(m) for m in values.pop("enabled_metrics")]
    config = resources_pb2.DriftConfig(
        name=CONFIG_NAME.format(customer=customer),
        enabled_metrics=metrics,
        updated_by=stored.updated_by,
        etag=stored.etag,
        **values,
    )
    if stored.update_time is not None:
        config.update_time.CopyFrom(_timestamp(stored.update_time))
    return config


def _timestamp(value: object) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)  # type: ignore[arg-type]
    return stamp


class DriftServicer(drift_service_pb2_grpc.DriftServiceServicer):
    def __init__(self, store: DriftStore) -> None:
        self._store = store

    async def GetDriftConfig(
        self, request: drift_service_pb2.GetDriftConfigRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.DriftConfig:
        customer = names.parse(request.name, CONFIG_NAME)["customer"]
        return config_message(customer, await self._store.get_config(customer))

    async def UpdateDriftConfig(
        self,
        request: drift_service_pb2.UpdateDriftConfigRequest,
        context: grpc.aio.ServicerContext,
    ) -> resources_pb2.DriftConfig:
        change = request.drift_config
        customer = names.parse(change.name, CONFIG_NAME, field="drift_config.name")["customer"]
        paths = mask_paths(request.update_mask, change, CONFIG_FIELDS)
        current = await self._store.get_config(customer)
        updates: dict[str, object] = {}
        for path in paths:
            value = getattr(change, path)
            if path == "enabled_metrics":
                value = tuple(resources_pb2.Metric.Name(m) for m in value)
            updates[path] = value
        config = dataclasses.replace(current.config, **updates)  # type: ignore[arg-type]
        problems = violations(config)
        if problems:
            raise errors.invalid_argument(
                "drift_config has invalid values",
                *(errors.FieldViolation(f"drift_config.{f}", d) for f, d in problems),
            )
        stored = await self._store.put_config(
            customer, config, require_identity().subject, change.etag
        )
        if stored is None:
            raise errors.ApiError(
                grpc.StatusCode.ABORTED,
                "drift_config changed since it was read; get it again and retry",
                reason="ETAG_MISMATCH",
                metadata={"resource": change.name},
            )
        return config_message(customer, stored)


def build(settings: Settings, engine: AsyncEngine) -> ServiceDefinition:
    return ServiceDefinition(
        full_name="upstream.drift.v1.DriftService",
        servicer=DriftServicer(DriftStore(engine)),
        add_to_server=drift_service_pb2_grpc.add_DriftServiceServicer_to_server,
    )

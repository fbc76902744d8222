"""What drift asks ingest, over gRPC: the customer's daily statistics and data range."""

from __future__ import annotations

import datetime as dt

import grpc
from google.type import date_pb2, money_pb2

from services.drift.detection import DayStat
from upstream.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc, resources_pb2

# A year of statistics streams in seconds; the default deadline is for quick calls.
STREAM_TIMEOUT_SECONDS = 300.0


def _cents(money: money_pb2.Money) -> int:
    return money.units * 100 + money.nanos // 10_000_000


def _date(value: dt.date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def day_stat(message: resources_pb2.DailyStat) -> DayStat:
    day = message.decision_date
    return DayStat(
        payer=message.payer,
        code_group=message.code_group,
        day=dt.date(day.year, day.month, day.day),
        decided=message.decided_claims,
        denied=message.denied_claims,
        partially_denied=message.partially_denied_claims,
        decision_days=dict(message.decision_days_histogram),
        billed_cents=_cents(message.billed_amount),
        allowed_cents=_cents(message.allowed_amount),
        paid_cents=_cents(message.paid_amount),
        denied_billed_cents=_cents(message.denied_billed_amount),
        carc_counts=dict(message.carc_counts),
    )


class IngestClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = ingest_service_pb2_grpc.IngestServiceStub(channel)

    async def latest_decision_date(self, customer: str) -> dt.date | None:
        """The last decision date across the customer's successful uploads."""
        latest: dt.date | None = None
        token = ""
        while True:
            page = await self._stub.ListUploads(
                ingest_service_pb2.ListUploadsRequest(
                    parent=f"customers/{customer}",
                    filter="state = SUCCEEDED",
                    page_size=1000,
                    page_token=token,
                )
            )
            for upload in page.uploads:
                if upload.HasField("last_decision_date"):
                    last = upload.last_decision_date
                    day = dt.date(last.year, last.month, last.day)
                    latest = day if latest is None or day > latest else latest
            token = page.next_page_token
            if not token:
                return latest

    async def daily_stats(self, customer: str, start: dt.date, end: dt.date) -> list[DayStat]:
        call = self._stub.StreamDailyStats(
            ingest_service_pb2.StreamDailyStatsRequest(
                parent=f"customers/{customer}", start_date=_date(start), end_date=_date(end)
            ),
            timeout=STREAM_TIMEOUT_SECONDS,
        )
        return [day_stat(stat) async for message in call for stat in message.daily_stats]

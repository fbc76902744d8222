"""Messages of rows kept per version (`runtime.messages.MessagesByVersion`)."""

from __future__ import annotations

from dataclasses import dataclass

from runtime.messages import MessagesByVersion
from upstream.drift.v1 import resources_pb2


@dataclass(frozen=True)
class _Row:
    event_id: str
    version: int
    state: str


def _kept(most: int = 4096) -> tuple[MessagesByVersion[resources_pb2.DriftEvent], list[_Row]]:
    made: list[_Row] = []

    def make(row: _Row) -> resources_pb2.DriftEvent:
        made.append(row)
        return resources_pb2.DriftEvent(
            name=f"customers/acme/driftEvents/{row.event_id}",
            state=resources_pb2.DriftEvent.State.Value(row.state),
            etag=str(row.version),
        )

    return MessagesByVersion(make, lambda row: (row.event_id, row.version), most), made


def test_a_row_read_again_at_the_same_version_is_not_made_again() -> None:
    messages, made = _kept()
    first = messages(_Row("ev_1", 1, "NEW"))
    again = messages(_Row("ev_1", 1, "NEW"))
    assert again is first and made == [_Row("ev_1", 1, "NEW")]


def test_a_new_version_is_made_anew_with_what_changed() -> None:
    messages, made = _kept()
    messages(_Row("ev_1", 1, "NEW"))
    triaged = messages(_Row("ev_1", 2, "ACKNOWLEDGED"))
    assert (triaged.state, triaged.etag) == (resources_pb2.DriftEvent.ACKNOWLEDGED, "2")
    assert len(made) == 2


def test_only_the_most_recently_used_are_kept() -> None:
    messages, made = _kept(most=2)
    for event in ("ev_1", "ev_2"):
        messages(_Row(event, 1, "NEW"))
    messages(_Row("ev_1", 1, "NEW"))  # used again: ev_2 is now the least recent
    messages(_Row("ev_3", 1, "NEW"))  # over the limit: ev_2 goes
    messages(_Row("ev_1", 1, "NEW"))
    messages(_Row("ev_2", 1, "NEW"))
    assert [row.event_id for row in made] == ["ev_1", "ev_2", "ev_3", "ev_2"]

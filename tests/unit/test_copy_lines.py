"""How an upload decides, in fixed memory, which claims it may have seen already, and when
it may probe stored claims by key."""

from __future__ import annotations

import hashlib

from services.ingest.claim_writes import probes_primary_key
from services.ingest.copy_lines import SeenClaims


def _digests(prefix: str, count: int) -> list[bytes]:
    return [hashlib.md5(f"PAYER|{prefix}{i}".encode()).digest() for i in range(count)]


def test_a_claim_added_before_is_always_called_seen() -> None:
    seen = SeenClaims()
    first = _digests("A", 50_000)
    assert not seen.check_and_add(first[:25_000]).any()
    # Added in pieces, and again mixed with new claims: every earlier one is found.
    again = seen.check_and_add(first[:25_000] + _digests("B", 1_000))
    assert again[:25_000].all()
    seen.check_and_add(first[25_000:])
    assert seen.check_and_add(first).all()


def test_new_claims_are_rarely_called_seen() -> None:
    seen = SeenClaims()
    for piece in range(20):
        seen.check_and_add(_digests(f"old{piece}-", 10_000))
    wrongly_seen = seen.check_and_add(_digests("new", 100_000)).mean()
    # 200,000 claims in 2**26 bits with 4 hashes: about 1e-7 expected.
    assert wrongly_seen < 1e-4


def _index_scan(index: str, condition: str, node: str = "Index Only Scan") -> dict:
    return {
        "Node Type": node,
        "Relation Name": "claims",
        "Index Name": index,
        "Index Cond": condition,
    }


def test_stored_claims_are_probed_only_through_the_primary_key_by_claim_uid() -> None:
    by_key = "((customer_id = 'c1'::text) AND (claim_uid = ANY ('{a,b}'::text[])))"
    assert probes_primary_key(_index_scan("claims_pkey", by_key))
    assert probes_primary_key(
        {
            "Node Type": "Bitmap Heap Scan",
            "Relation Name": "claims",
            "Plans": [_index_scan("claims_pkey", by_key, "Bitmap Index Scan")],
        }
    )
    # The planner believes the customer has one claim and reads all of them instead.
    assert not probes_primary_key(
        {
            "Node Type": "Bitmap Heap Scan",
            "Relation Name": "claims",
            "Filter": "(claim_uid = ANY ('{a,b}'::text[]))",
            "Plans": [
                _index_scan("claims_upload_idx", "(customer_id = 'c1'::text)", "Bitmap Index Scan")
            ],
        }
    )
    assert not probes_primary_key(_index_scan("claims_pkey", "(customer_id = 'c1'::text)"))
    assert not probes_primary_key({"Node Type": "Seq Scan", "Relation Name": "claims"})

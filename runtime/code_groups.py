"""The procedure-code groups ingest assigns (`Claim.code_group`: `LABORATORY`,
`EVALUATION_MANAGEMENT`, `REVENUE_04`) as people say them, in drift's summaries and in
alerts. The dashboard says them the same way (`gateway/static/js/dom.js`, `groupWords`)."""

from __future__ import annotations

_SAID = {
    "EVALUATION_MANAGEMENT": "evaluation and management",
    "SUPPLIES_TRANSPORT": "supplies and transport",
    "ENTERAL_PARENTERAL": "enteral and parenteral therapy",
    "ORTHOTICS_PROSTHETICS": "orthotics and prosthetics",
    "PROCEDURES_SERVICES": "HCPCS procedures and services",
    "TEMPORARY_CODES": "HCPCS temporary codes",
    "HCPCS_OTHER": "other HCPCS",
    "CPT_CATEGORY_II_III": "CPT category II and III",
}
_REVENUE = "REVENUE_"


def group_words(group: str) -> str:
    """`EVALUATION_MANAGEMENT` → "evaluation and management", `REVENUE_04` → "revenue code
    04xx", `LABORATORY` → "laboratory"."""
    if group.startswith(_REVENUE):
        return f"revenue code {group[len(_REVENUE) :]}xx"
    return _SAID.get(group) or group.replace("_", " ").lower()

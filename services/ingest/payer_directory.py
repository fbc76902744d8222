"""Ingest's built-in payer directory: the national payers' usual names, so that files naming
one payer in different words ("AETNA INC", "Aetna Life Insurance Company", "UHC") keep its
claims under one canonical payer without a mapping.

A name is one of them only when, its legal and generic words set aside ("Inc", "Insurance
Company", "Health Plan"), nothing else is left: a line of business or a region ("Aetna
Better Health", "UnitedHealthcare Community Plan", "Tricare East", "Medicare Part B") stays
a payer of its own, as do the Blue Cross Blue Shield plans, one per state. A customer's
payer mapping always comes first.
"""

from __future__ import annotations

import functools
import re

_BRANDS = {
    "AETNA": "Aetna",
    "ANTHEM": "Anthem",
    "CENTENE": "Centene",
    "CIGNA": "Cigna",
    "HUMANA": "Humana",
    "KAISER": "Kaiser Permanente",
    "KAISER FOUNDATION": "Kaiser Permanente",
    "KAISER PERMANENTE": "Kaiser Permanente",
    "MEDICAID": "Medicaid",
    "MEDICARE": "Medicare",
    "MOLINA": "Molina Healthcare",
    "OSCAR": "Oscar Health",
    "TRICARE": "TRICARE",
    "UHC": "UnitedHealthcare",
    "UNITED": "UnitedHealthcare",
    "UNITEDHEALTH": "UnitedHealthcare",
    "UNITEDHEALTHCARE": "UnitedHealthcare",
    "WELLCARE": "WellCare",
}
# Words that say what kind of company a payer is, not which.
_SET_ASIDE = frozenset(
    {
        "INC", "INCORPORATED", "CO", "COMPANY", "COMPANIES", "CORP", "CORPORATION", "LLC",
        "LTD", "LP", "PLC", "INSURANCE", "INS", "LIFE", "HEALTH", "HEALTHCARE", "CARE",
        "PLAN", "PLANS", "AND", "THE", "OF",
    }
)  # fmt: skip
_NOT_LETTERS = re.compile(r"[^A-Z0-9]+")


@functools.lru_cache(maxsize=4096)
def directory_payer(raw_name: str) -> str | None:
    """The canonical name of the national payer `raw_name` names, or None."""
    words = [w for w in _NOT_LETTERS.split(raw_name.upper()) if w and w not in _SET_ASIDE]
    return _BRANDS.get(" ".join(words))

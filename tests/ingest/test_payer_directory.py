"""The built-in payer directory: a national payer's names in other words are that payer; a
line of business, a region or a state plan is a payer of its own."""

from __future__ import annotations

import pytest

from services.ingest.payer_directory import directory_payer


@pytest.mark.parametrize(
    ("raw", "payer"),
    [
        ("AETNA INC", "Aetna"),
        ("Aetna, Inc.", "Aetna"),
        ("Aetna Life Insurance Company", "Aetna"),
        ("aetna health inc", "Aetna"),
        ("UHC", "UnitedHealthcare"),
        ("United Health Care", "UnitedHealthcare"),
        ("UnitedHealthcare Insurance Company", "UnitedHealthcare"),
        ("Cigna Health and Life Insurance Co.", "Cigna"),
        ("CIGNA HEALTHCARE", "Cigna"),
        ("Humana Inc", "Humana"),
        ("Kaiser Foundation Health Plan", "Kaiser Permanente"),
        ("Molina Healthcare, Inc.", "Molina Healthcare"),
        ("TRICARE", "TRICARE"),
    ],
)
def test_a_national_payer_in_other_words_is_that_payer(raw: str, payer: str) -> None:
    assert directory_payer(raw) == payer


@pytest.mark.parametrize(
    "raw",
    [
        "Aetna Better Health",  # Medicaid plans
        "UnitedHealthcare Community Plan",
        "Cigna-HealthSpring",  # Medicare Advantage
        "Humana Military",
        "Tricare East",
        "Medicare Part B",
        "Molina Healthcare of Texas",
        "Blue Cross Blue Shield of Texas",
        "United American Insurance Company",
        "Health Net",
        "The Health Plan",
        "Self Pay",
        "",
    ],
)
def test_a_line_of_business_region_or_other_payer_is_its_own(raw: str) -> None:
    assert directory_payer(raw) is None

"""Procedure-code groups: the clinical areas drift is compared within.

CPT ranges follow the AMA's sections; HCPCS Level II codes group by their letter; revenue
codes (835 `NU`) by their first two digits. Unknown codes fall in OTHER.
"""

from __future__ import annotations

_CPT_SECTIONS: tuple[tuple[int, int, str], ...] = (
    (100, 1999, "ANESTHESIA"),
    (10004, 69990, "SURGERY"),
    (70010, 79999, "RADIOLOGY"),
    (80047, 89398, "LABORATORY"),
    (90281, 99199, "MEDICINE"),
    (99201, 99499, "EVALUATION_MANAGEMENT"),
    (99500, 99607, "MEDICINE"),
)
_HCPCS_LETTERS = {
    "A": "SUPPLIES_TRANSPORT",
    "B": "ENTERAL_PARENTERAL",
    "E": "DURABLE_MEDICAL_EQUIPMENT",
    "G": "PROCEDURES_SERVICES",
    "J": "DRUGS",
    "K": "DURABLE_MEDICAL_EQUIPMENT",
    "L": "ORTHOTICS_PROSTHETICS",
    "Q": "TEMPORARY_CODES",
}


def code_group(procedure_code: str) -> str:
    code = procedure_code.strip().upper()
    if len(code) == 5 and code.isdigit():
        number = int(code)
        for low, high, group in _CPT_SECTIONS:
            if low <= number <= high:
                return group
        return "OTHER"
    if len(code) == 5 and code[4] in "FTU" and code[:4].isdigit():
        return "CPT_CATEGORY_II_III"
    if len(code) == 5 and code[0].isalpha() and code[1:].isdigit():
        return _HCPCS_LETTERS.get(code[0], "HCPCS_OTHER")
    if len(code) == 4 and code.isdigit():
        return "REVENUE_" + code[:2]
    return "OTHER"

"""The MMMU subjects in the official order (`CAT_SHORT2LONG` of the official data_utils.py) and the
discipline each belongs to (`DOMAIN_CAT2SUB_CAT`).

The order matters: the official scorer draws the fallback letter of unparseable multiple-choice answers
from one seeded random stream, subject after subject in this order.
"""
from __future__ import annotations

# short name -> subject, in the official order (dict order is the order the official loops use)
CAT_SHORT2LONG: dict[str, str] = {
    "acc": "Accounting", "agri": "Agriculture", "arch": "Architecture_and_Engineering", "art": "Art",
    "art_theory": "Art_Theory", "bas_med": "Basic_Medical_Science", "bio": "Biology", "chem": "Chemistry",
    "cli_med": "Clinical_Medicine", "cs": "Computer_Science", "design": "Design",
    "diag_med": "Diagnostics_and_Laboratory_Medicine", "econ": "Economics", "elec": "Electronics",
    "ep": "Energy_and_Power", "fin": "Finance", "geo": "Geography", "his": "History", "liter": "Literature",
    "manage": "Manage", "mark": "Marketing", "mate": "Materials", "math": "Math",
    "mech": "Mechanical_Engineering", "music": "Music", "phar": "Pharmacy", "phys": "Physics",
    "psy": "Psychology", "pub_health": "Public_Health", "socio": "Sociology",
}
SUBJECTS: tuple[str, ...] = tuple(CAT_SHORT2LONG.values())

# discipline -> subjects, in the official order (the printed table follows it)
DISCIPLINES: dict[str, tuple[str, ...]] = {
    "Art and Design": ("Art", "Art_Theory", "Design", "Music"),
    "Business": ("Accounting", "Economics", "Finance", "Manage", "Marketing"),
    "Science": ("Biology", "Chemistry", "Geography", "Math", "Physics"),
    "Health and Medicine": ("Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine",
                            "Pharmacy", "Public_Health"),
    "Humanities and Social Science": ("History", "Literature", "Sociology", "Psychology"),
    "Tech and Engineering": ("Agriculture", "Architecture_and_Engineering", "Computer_Science", "Electronics",
                             "Energy_and_Power", "Materials", "Mechanical_Engineering"),
}
DISCIPLINE_OF: dict[str, str] = {s: d for d, subs in DISCIPLINES.items() for s in subs}
_ORDER = {s: i for i, s in enumerate(SUBJECTS)}
# longest first, so "Art_Theory" wins over "Art" in validation_Art_Theory_3
_BY_LENGTH = sorted(SUBJECTS, key=len, reverse=True)


def subject_order(subject: str) -> int:
    """Position of `subject` in the official order (KeyError for an unknown subject)."""
    return _ORDER[subject]


def subject_of_id(sample_id: str) -> str | None:
    """The subject named in an MMMU id (`validation_Art_Theory_3` -> `Art_Theory`), or None.

    The official code takes `"_".join(id.split("_")[1:-1])`; we match the known subjects instead, longest
    first, which agrees on every official id and also finds the subject when a suffix follows the number.
    """
    for subject in _BY_LENGTH:
        if f"_{subject}_" in sample_id:
            return subject
    return None

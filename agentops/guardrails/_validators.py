"""Checks that run only on regex candidates: Luhn, card networks, IBAN mod-97, SSN rules, entropy,
placeholder values, phone plausibility."""

from __future__ import annotations

import math
import re

from agentops.guardrails.catalogue import is_placeholder

_DOUBLED = str.maketrans("0123456789", "0246813579")  # each digit doubled, digits of the product summed


def _luhn_ok(digits: str) -> bool:
    """Luhn checksum (ISO/IEC 7812) of a string of ASCII digits."""
    return (sum(map(int, digits[-1::-2])) + sum(map(int, digits[-2::-2].translate(_DOUBLED)))) % 10 == 0


# Issuer prefixes (IIN ranges) and card lengths of the networks in wide use (ISO/IEC 7812 registrations
# as the networks publish them).
def _card_network_ok(d: str) -> bool:
    n = len(d)
    two, three, four, six = int(d[:2]), int(d[:3]), int(d[:4]), int(d[:6])
    if d[0] == "4":
        return n in (13, 16, 19)  # Visa
    if d[0] == "1":
        return n == 15  # UATP
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16  # Mastercard
    if two in (34, 37):
        return n == 15  # American Express
    if four == 6011 or two == 65 or 644 <= three <= 649 or 622126 <= six <= 622925:
        return 16 <= n <= 19  # Discover
    if 3528 <= four <= 3589:
        return 16 <= n <= 19  # JCB
    if four in (2131, 1800):
        return n == 15  # JCB (older 15-digit numbers)
    if two in (36, 38, 39) or 300 <= three <= 305 or three == 309:
        return 14 <= n <= 19  # Diners Club
    if two in (62, 81):
        return 16 <= n <= 19  # UnionPay
    if 2200 <= four <= 2204:
        return 16 <= n <= 19  # Mir
    if d[:4] in ("5018", "5020", "5038", "5893", "6304", "6759", "6761", "6762", "6763", "0604", "6390") or (
        56 <= two <= 58
    ):
        return 12 <= n <= 19  # Maestro
    if 60 <= two <= 69 or d[:4] in ("5019", "4571"):
        return 16 <= n <= 19  # RuPay, Dankort, Troy and other domestic networks
    return False


# IBAN lengths per country (ISO 13616 registry).
_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


_IBAN_LETTERS = str.maketrans({chr(65 + i): str(10 + i) for i in range(26)})


def _iban_ok(compact: str) -> bool:
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = (compact[4:] + compact[:4]).translate(_IBAN_LETTERS)
    if not rearranged.isdigit():
        return False
    return int(rearranged) % 97 == 1


def _ssn_ok(area: str, group: str, serial: str) -> bool:
    a = int(area)
    if a == 0 or a == 666 or a >= 900:
        return False
    if group == "00" or serial == "0000":
        return False
    # Numbers the SSA voided after they were printed in advertising.
    return f"{area}{group}{serial}" not in ("078051120", "219099999")


def _entropy(s: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(s)
    return math.log2(n) - sum(c * math.log2(c) for c in map(s.count, set(s))) / n


_HAS_DIGIT = re.compile(r"[0-9]")


def _secret_value_ok(value: str, strict: bool) -> bool:
    """A real-looking secret value: not a placeholder, enough distinct characters and entropy."""
    if len(set(value)) < 6 or is_placeholder(value):
        return False
    classes = (
        (value.upper() != value)
        + (value.lower() != value)
        + (_HAS_DIGIT.search(value) is not None)
        + (not value.isalnum())
    )
    if strict:
        return len(value) >= 16 and classes >= 2 and _entropy(value) >= 3.3
    return classes >= 2 and _entropy(value) >= 2.6


def _phone_ok(digits: str, raw: str) -> bool:
    """Plausible phone number: country-coded 8-15 digits, or a NANP 10-digit number."""
    if raw.lstrip().startswith(("+", "00")):
        cc_digits = digits[2:] if raw.lstrip().startswith("00") else digits
        return 8 <= len(cc_digits) <= 15 and cc_digits[0] != "0"
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    if len(digits) != 10:
        return False
    # NANP: area code and exchange start with 2-9; N11 service codes are not area codes.
    if digits[0] in "01" or digits[3] in "01" or digits[1:3] == "11":
        return False
    return len(set(digits)) > 2

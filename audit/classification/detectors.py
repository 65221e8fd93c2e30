"""Sensitivity detectors: precise, local pattern checks that report names, never the matched text.

Each detector has a name and a level. The level of a prompt is the highest level of any detector
that fired (restricted > confidential > internal > public). Checksums (Luhn, IBAN mod-97, SSN
ranges, JWT header) keep random digit runs and look-alikes from firing.
"""

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

PUBLIC = "public"
INTERNAL = "internal"
CONFIDENTIAL = "confidential"
RESTRICTED = "restricted"
LEVELS: tuple[str, ...] = (PUBLIC, INTERNAL, CONFIDENTIAL, RESTRICTED)
_RANK = {level: rank for rank, level in enumerate(LEVELS)}


@dataclass(frozen=True)
class Detector:
    name: str
    level: str
    find: Callable[[str], bool]


def _regex(pattern: str, *needles: str) -> Callable[[str], bool]:
    """A pattern, run only when the text contains one of `needles` (exact, cheap substrings)."""
    compiled = re.compile(pattern)
    if not needles:
        return lambda text: compiled.search(text) is not None
    return lambda text: any(n in text for n in needles) and compiled.search(text) is not None


def _regex_checked(
    pattern: str, check: Callable[[re.Match[str]], bool], flags: int = 0
) -> Callable[[str], bool]:
    compiled = re.compile(pattern, flags)

    def find(text: str) -> bool:
        return any(check(match) for match in compiled.finditer(text))

    return find


# ---------------------------------------------------------------- restricted: checksums


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn (mod 10) check."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card_brand_ok(digits: str) -> bool:
    """Issuer prefix and length of a real card scheme (Visa, Mastercard, Amex, Discover, ...)."""
    length = len(digits)
    two, four, six = int(digits[:2]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4":  # Visa
        return length in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:  # Mastercard
        return length == 16
    if two in (34, 37):  # American Express
        return length == 15
    if four == 6011 or two == 65 or 644 <= int(digits[:3]) <= 649 or 622126 <= six <= 622925:
        return 16 <= length <= 19  # Discover
    if 3528 <= four <= 3589:  # JCB
        return 16 <= length <= 19
    if 300 <= int(digits[:3]) <= 305 or two in (36, 38, 39):  # Diners Club
        return 14 <= length <= 19
    if two == 62:  # UnionPay
        return 16 <= length <= 19
    if two in (50, 56, 57, 58) or digits[:2] in ("67", "63"):  # Maestro
        return 12 <= length <= 19
    return False


# A run of 13-19 digits, either plain or in groups separated consistently by spaces or hyphens.
_CARD = re.compile(
    r"(?<![\d.,/-])(?:\d{13,19}"
    r"|\d{4}([ -])\d{4}(?:\1\d{4}){1,2}(?:\1\d{1,3})?"
    r"|\d{4}([ -])\d{6}\2\d{4,5})"
    r"(?![\d]|[.,/-]\d)"
)


def has_payment_card(text: str) -> bool:
    for match in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", match.group(0))
        if 13 <= len(digits) <= 19 and _card_brand_ok(digits) and luhn_valid(digits):
            return True
    return False


# Length of the IBAN for each country that issues them (SWIFT IBAN registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip

_IBAN = re.compile(r"\b([A-Z]{2})(\d{2})((?: ?[A-Z0-9]){11,30})\b")


def iban_valid(candidate: str) -> bool:
    """True for an IBAN (spaces allowed) of the right length for its country, mod-97 == 1."""
    compact = candidate.replace(" ", "").upper()
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def has_iban(text: str) -> bool:
    for match in _IBAN.finditer(text):
        country = match.group(1)
        expected = IBAN_LENGTHS.get(country)
        if expected is None:
            continue
        compact = match.group(0).replace(" ", "")
        # The greedy match may run into the next word's characters only if no space intervened;
        # try the exact expected length as well.
        if iban_valid(compact) or (len(compact) > expected and iban_valid(compact[:expected])):
            return True
    return False


_SSN = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])")
_SSN_BARE = re.compile(
    r"(?i)\b(?:ssn|social security(?: number| no\.?| #)?)\s*(?:is|:|#|=)?\s*(\d{9})\b"
)


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """US SSN issuance rules: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def has_us_ssn(text: str) -> bool:
    for match in _SSN.finditer(text):
        if ssn_valid(match.group(1), match.group(3), match.group(4)):
            return True
    for match in _SSN_BARE.finditer(text):
        digits = match.group(1)
        if ssn_valid(digits[:3], digits[3:5], digits[5:]):
            return True
    return False


_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def _b64url_json(segment: str) -> dict | None:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def has_jwt(text: str) -> bool:
    if "eyJ" not in text:
        return False
    for match in _JWT.finditer(text):
        header_segment, payload_segment, _signature = match.group(0).split(".", 2)
        header = _b64url_json(header_segment)
        if header is not None and "alg" in header and _b64url_json(payload_segment) is not None:
            return True
    return False


_PLACEHOLDER_PASSWORD = re.compile(
    r"(?i)^(?:\*+|x+|\.+|<[^>]*>|\{[^}]*\}|\$\{?[\w]+\}?|%\(?\w+\)?s?|pass(?:word)?|pwd|secret|"
    r"changeme|example|your[_-]?password|\[[^\]]*\])$"
)
_URL_CREDENTIALS = re.compile(
    r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@]{1,64}:([^\s@/]{1,128})@[\w.-]+", re.IGNORECASE
)


def has_url_credentials(text: str) -> bool:
    """A connection string or URL carrying a real-looking password (not a placeholder)."""
    if "://" not in text:
        return False
    for match in _URL_CREDENTIALS.finditer(text):
        if not _PLACEHOLDER_PASSWORD.match(match.group(1)):
            return True
    return False


# ---------------------------------------------------------------- confidential: personal data

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b"
)
# Documentation-reserved and obviously fake domains do not count as someone's address.
_EXAMPLE_DOMAIN = re.compile(r"@(?:[\w-]+\.)*(?:example\.(?:com|org|net)|example|test|invalid)$")


def has_email_address(text: str) -> bool:
    return any(not _EXAMPLE_DOMAIN.search(m.group(0).lower()) for m in _EMAIL.finditer(text))


# International (+CC ...) numbers, or national numbers written the way people write phone
# numbers: (555) 123-4567, 555-123-4567, 030 1234567, 06 12 34 56 78, 090-1234-5678.
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[ .-]?(?:\(0?\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){2,4}"
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}"
    r"|\d{3}[.-]\d{3}[.-]\d{4}"
    r"|0\d{1,4}[ /-]\d{3,4}[ -]?\d{3,5}"
    r"|0\d(?:[ .]\d{2}){4}"
    r")(?![\w-])"
)
_PHONE_CONTEXT = re.compile(
    r"(?i)(?:phone|tel\b|telephone|mobile|cell|call me|whatsapp|fax|telefon|handy|"
    r"téléphone|portable|teléfono|móvil|電話|携帯)"
)


def has_phone_number(text: str) -> bool:
    for match in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if not 8 <= len(digits) <= 15:
            continue
        if match.group(0).startswith(("+", "(")):
            return True
        # A national-format number counts when the text talks about phones near it.
        window = text[max(0, match.start() - 60) : match.end() + 20]
        if _PHONE_CONTEXT.search(window) or re.fullmatch(r"\d{3}-\d{3}-\d{4}", match.group(0)):
            return True
    return False


_STREET_WORDS = (
    r"street|st\.|avenue|ave\.?|road|rd\.|boulevard|blvd\.?|lane|ln\.|drive|dr\.|court|ct\.|"
    r"way|place|pl\.|terrace|square|parkway"
)
# Each pattern is gated by words it cannot match without (checked on the lower-cased text
# first, which is much cheaper than running the expression over a long prompt).
_POSTAL_PATTERNS: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    # 1600 Amphitheatre Parkway / 221B Baker Street / 42 Elm St.
    (
        tuple(word.rstrip("\\.?") for word in _STREET_WORDS.split("|")),
        re.compile(
            rf"\b\d{{1,5}}[A-Za-z]?\s+(?:[A-Z][\w'-]+\s+){{1,3}}(?:{_STREET_WORDS})(?=[\s,.;]|$)"
        ),
    ),
    # Hauptstraße 12 / Lindenallee 4a / Am Markt 3 (German), followed by a postcode or city
    (
        ("straße", "strasse", "str.", "weg", "allee", "gasse", "platz", "ring", "damm"),
        re.compile(
            r"\b[A-ZÄÖÜ][\wäöüß-]*(?:straße|strasse|str\.|weg|allee|gasse|platz|ring|damm)"
            r"\s+\d{1,4}[a-z]?\b(?=\s*,?\s*(?:\d{4,5}\s+[A-ZÄÖÜ]|[A-ZÄÖÜ]))"
        ),
    ),
    # 12 rue de la Paix / 5 avenue Victor Hugo / 3 boulevard Haussmann (French)
    (
        ("rue", "avenue", "boulevard", "bd", "place", "allée", "chemin", "impasse", "quai"),
        re.compile(
            r"\b\d{1,4}(?:\s?(?:bis|ter))?,?\s+"
            r"(?:rue|avenue|boulevard|bd|place|allée|chemin|impasse|quai)"
            r"\s+(?:d[eu']\s?|de la |des )?[A-ZÉ][\w'-]+"
        ),
    ),
    # Calle Mayor 3 / Avenida de la Constitución 21 / Paseo de Gracia 43 (Spanish)
    (
        ("calle", "c/", "avenida", "avda.", "paseo", "plaza"),
        re.compile(
            r"\b(?i:calle|c/|avenida|avda\.|paseo|plaza)\s+(?:de\s+(?:la\s+|los\s+)?)?"
            r"[A-ZÁÉÍÓÚ][\wáéíóúñ]+(?:\s+[A-ZÁÉÍÓÚ][\wáéíóúñ]+)?,?\s+(?:n\.?º\s*)?\d{1,4}\b"
        ),
    ),
    # 〒100-0001 (Japanese postal code mark)
    (("〒",), re.compile(r"〒\s?\d{3}-\d{4}")),
)
_US_CITY_STATE_ZIP = re.compile(r"\b[A-Z][a-z]+(?: [A-Z][a-z]+)?, [A-Z]{2} \d{5}(?:-\d{4})?\b")


def has_postal_address(text: str) -> bool:
    lowered = text.lower()
    for stems, pattern in _POSTAL_PATTERNS:
        if any(stem in lowered for stem in stems) and pattern.search(text):
            return True
    return _US_CITY_STATE_ZIP.search(text) is not None


_PERSON_NAME = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Dr|Herr|Frau|M\.|Mme|Sr|Sra)\.?\s+[A-Z][a-zäöüéèáíóúñ]+"
    r"|\b(?:name|customer|patient|contact|client|employee|Name|Kunde|Kundin|nom|nombre)\s*[:=]\s*"
    r"[A-Z][a-zäöüéèáíóúñ]+\s+[A-Z][a-zäöüéèáíóúñ]+)"
)


def has_person_with_contact(text: str) -> bool:
    """A personal name together with contact details (an e-mail, phone number or address)."""
    if not _PERSON_NAME.search(text):
        return False
    return has_email_address(text) or has_phone_number(text) or has_postal_address(text)


_HEALTH = re.compile(
    r"(?i)\b(?:diagnos(?:is|ed|e)|prescri(?:bed|ption)|medical record|patient(?:'s)? (?:history|"
    r"chart|record|file)|blood pressure|blood test|HbA1c|chemotherapy|radiotherapy|oncolog\w*|"
    r"HIV|hepatitis|diabetes|diabetic|epilep\w+|schizophreni\w+|bipolar disorder|depressi(?:on|ve) "
    r"(?:episode|disorder)|antidepressant\w*|sick (?:leave|note)|medical leave|disability claim|"
    r"allerg(?:y|ic) to|pregnan(?:t|cy)|miscarriage|ICD-10|surgery|biopsy|MRI scan|"
    r"Diagnose|Krankschreibung|Arbeitsunfähigkeit\w*|Befund|Krankheit|Rezept für|"
    r"diagnostic|ordonnance|arrêt maladie|maladie chronique|"
    r"diagnóstico|receta médica|baja médica|enfermedad"
    r")\b|診断|病歴|処方|持病|通院"
)
_ICD10 = re.compile(r"\b(?:ICD-?10(?:-CM)?:?\s*)[A-TV-Z]\d{2}(?:\.\d{1,4})?\b")


_HEALTH_STEMS = (
    "diagnos", "diagnó", "prescri", "medical", "patient", "blood", "hba1c", "therapy", "oncolog",
    "hiv", "hepatitis", "diabet", "epilep", "schizophreni", "bipolar", "depress", "sick",
    "disability", "allerg", "pregnan", "miscarriage", "icd", "surgery", "biopsy", "mri",
    "krankschreibung", "arbeitsunfähig", "befund", "krankheit", "rezept", "ordonnance",
    "maladie", "receta", "baja médica", "enfermedad", "診断", "病歴", "処方", "持病", "通院",
)  # fmt: skip


def has_health_data(text: str) -> bool:
    lowered = text.lower()
    if not any(stem in lowered for stem in _HEALTH_STEMS):
        return False
    return bool(_HEALTH.search(text) or _ICD10.search(text))


_DATE_OF_BIRTH_STEMS = (
    "birth", "dob", "d.ob", "do.b", "d.o", "born", "geburt", "geb.", "naissance", "nacimiento",
    "生年月日",
)  # fmt: skip
_DATE_OF_BIRTH = re.compile(
    r"(?i)\b(?:date of birth|d\.?o\.?b\.?|born on|geburtsdatum|geb\.|date de naissance|"
    r"fecha de nacimiento)\s*[:=]?\s*\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|生年月日"
)

# ---------------------------------------------------------------- internal markers

_INTERNAL_MARKER_STEMS = (
    "intern", "company", "confiden", "do not", "not for", "proprietary", "nda", "embargoed",
    "vertraulich", "社外秘", "社内限定", "機密",
)  # fmt: skip
_INTERNAL_MARKER = re.compile(
    r"(?i)\b(?:internal(?: use)? only|for internal use|company[- ]internal|confidential|"
    r"do not (?:share|distribute|forward)|not for (?:distribution|external)|proprietary|"
    r"under NDA|embargoed|intern(?:e|es)? (?:Nutzung|Verwendung)|nur für den internen|"
    r"vertraulich|usage interne|confidentiel|uso interno|confidencial)\b|社外秘|社内限定|機密"
)
_INTERNAL_HOST_STEMS = (
    ".intern", ".intra", ".corp", ".lan", ".local", "intranet.", "jira.", "confluence.",
    "gitlab.", "grafana.", "kibana.",
)  # fmt: skip
_INTERNAL_HOST = re.compile(
    r"(?i)\b(?:[a-z0-9-]+\.)+(?:internal|intranet|corp|lan|local|localdomain|intra)\b"
    r"|\b(?:intranet|jira|confluence|gitlab|grafana|kibana)\.[a-z0-9-]+\.[a-z]{2,}\b"
)
_PRIVATE_IP = re.compile(
    r"(?<![\d.])(?:10\.\d{1,3}|192\.168|172\.(?:1[6-9]|2\d|3[01]))\.\d{1,3}\.\d{1,3}(?![\d.])"
)


def _gated(stems: tuple[str, ...], pattern: re.Pattern[str]) -> Callable[[str], bool]:
    """Run `pattern` only when the lower-cased text contains one of the words it needs."""

    def find(text: str) -> bool:
        lowered = text.lower()
        return any(stem in lowered for stem in stems) and pattern.search(text) is not None

    return find


DETECTORS: tuple[Detector, ...] = (
    # restricted: secrets and credentials
    Detector(
        "anthropic_api_key",
        RESTRICTED,
        _regex(r"\bsk-ant-(?:api|admin|oat|sid)\d{2}-[A-Za-z0-9_-]{20,}", "sk-ant-"),
    ),
    Detector(
        "openai_api_key",
        RESTRICTED,
        _regex(r"\bsk-(?!ant-)(?:proj-|svcacct-)?[A-Za-z0-9_-]{40,}", "sk-"),
    ),
    Detector(
        "aws_access_key",
        RESTRICTED,
        _regex(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{16}\b", "AKIA", "ASIA", "AIDA", "AROA"),
    ),
    Detector(
        "aws_secret_key",
        RESTRICTED,
        _regex(
            r"(?i)(?:aws_?secret_?(?:access_?)?key|secret_?access_?key|SecretAccessKey)"
            r"[\"']?\s*[:=]\s*[\"']?(?-i:[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"
        ),
    ),
    Detector(
        "github_token",
        RESTRICTED,
        _regex(
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})\b",
            "gh",
            "github_pat_",
        ),
    ),
    Detector("slack_token", RESTRICTED, _regex(r"\bxox[abposr]-[A-Za-z0-9-]{10,}", "xox")),
    Detector(
        "slack_webhook",
        RESTRICTED,
        _regex(
            r"hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{16,}",
            "hooks.slack.com",
        ),
    ),
    Detector(
        "stripe_secret_key", RESTRICTED, _regex(r"\b(?:sk|rk)_live_[A-Za-z0-9]{16,}", "_live_")
    ),
    Detector(
        "google_api_key", RESTRICTED, _regex(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])", "AIza")
    ),
    Detector(
        "private_key",
        RESTRICTED,
        _regex(
            r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----",
            "PRIVATE KEY",
        ),
    ),
    Detector("jwt", RESTRICTED, has_jwt),
    Detector("url_credentials", RESTRICTED, has_url_credentials),
    Detector("payment_card", RESTRICTED, has_payment_card),
    Detector("iban", RESTRICTED, has_iban),
    Detector("us_ssn", RESTRICTED, has_us_ssn),
    # confidential: personal data
    Detector("email_address", CONFIDENTIAL, has_email_address),
    Detector("phone_number", CONFIDENTIAL, has_phone_number),
    Detector("postal_address", CONFIDENTIAL, has_postal_address),
    Detector("person_with_contact", CONFIDENTIAL, has_person_with_contact),
    Detector("health_data", CONFIDENTIAL, has_health_data),
    Detector("date_of_birth", CONFIDENTIAL, _gated(_DATE_OF_BIRTH_STEMS, _DATE_OF_BIRTH)),
    # internal: company-internal markers
    Detector("internal_marker", INTERNAL, _gated(_INTERNAL_MARKER_STEMS, _INTERNAL_MARKER)),
    Detector("internal_hostname", INTERNAL, _gated(_INTERNAL_HOST_STEMS, _INTERNAL_HOST)),
    Detector("private_ip_address", INTERNAL, lambda text: bool(_PRIVATE_IP.search(text))),
)

DETECTOR_LEVELS: dict[str, str] = {detector.name: detector.level for detector in DETECTORS}


def detect(text: str) -> tuple[tuple[str, ...], str]:
    """Return (names of the detectors that fired, sensitivity level). Never returns matches."""
    fired = tuple(detector.name for detector in DETECTORS if detector.find(text))
    level = PUBLIC
    for name in fired:
        if _RANK[DETECTOR_LEVELS[name]] > _RANK[level]:
            level = DETECTOR_LEVELS[name]
    return fired, level

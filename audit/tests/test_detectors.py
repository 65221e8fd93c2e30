"""Each sensitivity detector on positive and negative cases; names are returned, never matches."""

import pytest

from audit.classification.detectors import (
    DETECTORS,
    detect,
    iban_valid,
    luhn_valid,
    ssn_valid,
)


def fired(text: str) -> set[str]:
    return set(detect(text)[0])


def level(text: str) -> str:
    return detect(text)[1]


# ------------------------------------------------------------------------------ payment cards


@pytest.mark.parametrize(
    "number",
    [
        "4111 1111 1111 1111",
        "4242-4242-4242-4242",
        "5555555555554444",
        "3782 822463 10005",
        "6011 1111 1111 1117",
        "3530111333300000",
        "2223 0031 2200 3222",
    ],
)
def test_payment_card_fires_on_luhn_valid_card_numbers(number: str) -> None:
    assert "payment_card" in fired(f"The card used was {number}, expiry 11/27.")


@pytest.mark.parametrize(
    "number",
    [
        "4111 1111 1111 1112",  # Luhn-invalid
        "4929123456789012",  # looks like Visa, fails Luhn
        "1234567890123456",  # order number, fails Luhn
        "9999 9999 9999 9995",  # passes Luhn, no card scheme starts with 99
        "4111-1111 1111-1111",  # inconsistent separators
        "41111111111111110",  # 17 digits with a Visa prefix: not a Visa length
    ],
)
def test_payment_card_ignores_numbers_that_are_not_cards(number: str) -> None:
    assert "payment_card" not in fired(f"Order reference {number}")


def test_luhn_check_matches_the_textbook_examples() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


def test_payment_card_does_not_fire_inside_a_longer_digit_run() -> None:
    assert "payment_card" not in fired("tracking 0041111111111111111")


# ------------------------------------------------------------------------------ IBAN


@pytest.mark.parametrize(
    "iban",
    [
        "DE89 3704 0044 0532 0130 00",
        "GB29NWBK60161331926819",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91 ABNA 0417 1643 00",
        "CH93 0076 2011 6238 5295 7",
    ],
)
def test_iban_fires_on_checksum_valid_ibans(iban: str) -> None:
    assert "iban" in fired(f"Please pay to {iban} by Friday.")


@pytest.mark.parametrize(
    "candidate",
    [
        "DE89 3704 0044 0532 0130 01",  # wrong checksum
        "DE89 3704 0044 0532 0130",  # too short for Germany
        "XX89 3704 0044 0532 0130 00",  # no such country
        "GB29 NWBK 6016 1331 9268 18",  # one digit off
    ],
)
def test_iban_ignores_invalid_candidates(candidate: str) -> None:
    assert "iban" not in fired(f"Account: {candidate}")


def test_iban_checksum_helper() -> None:
    assert iban_valid("GB82 WEST 1234 5698 7654 32")
    assert not iban_valid("GB82 WEST 1234 5698 7654 33")


# ------------------------------------------------------------------------------ US SSN


@pytest.mark.parametrize("ssn", ["123-45-6789", "536-22-1987", "219 09 9999"])
def test_us_ssn_fires_on_valid_numbers(ssn: str) -> None:
    assert "us_ssn" in fired(f"Employee SSN: {ssn}")


@pytest.mark.parametrize(
    "ssn",
    ["000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000", "123-45-67890"],
)
def test_us_ssn_ignores_numbers_in_invalid_ranges(ssn: str) -> None:
    assert "us_ssn" not in fired(f"Employee SSN: {ssn}")


def test_us_ssn_without_separators_needs_the_word_ssn() -> None:
    assert "us_ssn" in fired("Her SSN is 536221987.")
    assert "us_ssn" not in fired("Invoice 536221987 is overdue.")


def test_ssn_rules_helper() -> None:
    assert ssn_valid("123", "45", "6789")
    assert not ssn_valid("900", "45", "6789")


# ------------------------------------------------------------------------------ secrets

ANTHROPIC = (
    "sk-ant-api03-" + "Xq7vR2mK9pL4tW8nZ3cB6dF1hJ5sY0aE2gU7iO4kM9qT3rV8xN1bC6wZ5pL2jH7f" + "AA"
)
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJ1c2VyX2lkIjo0Miwicm9sZSI6ImFkbWluIn0."
    "5mhBHqs5_DTLdINd9p5m7ZJ6XD0Xc55kIaCRY5r6HRA"
)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("anthropic_api_key", f"x-api-key: {ANTHROPIC}"),
        ("aws_access_key", "aws_access_key_id = AKIA4Q2ZJX7LMN3BV8RT"),
        ("aws_secret_key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq9LkW2mTs"),
        ("github_token", "token ghp_8fK2mQ9xLr4TzW7bNc3Vd5Hj1Ys6Pa0Ue2Gi"),
        (
            "github_token",
            "github_pat_11ABCDE7Q0xK9mP2vL5tR8_Wn3Bz6Yc1Df4Gh7Jk0Lm2Np5Qr8St1Uv4Wx7Yz0",
        ),
        ("slack_token", "Bearer xoxb-2741936054-5829160377425-kQ8rT3mN7vW2pL9zX4cF6hJs"),
        ("stripe_secret_key", 'stripe.api_key = "sk_live_51Mx9QvKp3TzR8wLn2YbC4dFh"'),
        ("stripe_secret_key", "rk_live_51H7aBcDeFgHiJkLmNoPqRsT"),
        (
            "private_key",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----",
        ),
        ("private_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl..."),
        ("private_key", "-----BEGIN PRIVATE KEY-----\nMIIE..."),
        ("jwt", f"Authorization: Bearer {JWT}"),
        ("url_credentials", "DATABASE_URL=postgres://app:Tr0ub4dor-88x@db.corp:5432/app"),
    ],
)
def test_secret_detectors_fire_on_real_looking_secrets(name: str, text: str) -> None:
    assert name in fired(text)
    assert level(text) == "restricted"


@pytest.mark.parametrize(
    "text",
    [
        "export ANTHROPIC_API_KEY=sk-ant-...",
        "use a made-up key like sk-ant-XXXXXXXX",
        "stripe test keys start with sk_test_ and live keys with sk_live_",
        "ghp_ tokens are 40 characters long",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqh...",
        "-----BEGIN CERTIFICATE-----\nMIID...",
        "our tokens look like eyJhbGciOi... and expire after 15 minutes",
        "eyJub3QiOiJqd3QifQ.eyJhbHNvIjoibm90In0.c2lnbmF0dXJlX2hlcmU",  # header lacks alg
        "DATABASE_URL=postgres://app:${DB_PASSWORD}@db.internal:5432/app",
        "postgres://user:<password>@localhost/db",
        "redis://cache.internal:6379/0",
    ],
)
def test_secret_detectors_ignore_placeholders_and_public_material(text: str) -> None:
    secrets = {"anthropic_api_key", "github_token", "stripe_secret_key", "private_key", "jwt"}
    secrets |= {"url_credentials", "slack_token"}
    assert not fired(text) & secrets


def test_an_anthropic_key_is_reported_once_under_its_own_name() -> None:
    names = detect(f"x-api-key: {ANTHROPIC}")[0]
    assert names == ("anthropic_api_key",)
    assert "openai_api_key" in fired("OPENAI_API_KEY=sk-proj-" + "a1B2c3D4e5" * 5)


def test_aws_access_key_needs_sixteen_upper_case_characters_after_the_prefix() -> None:
    assert "aws_access_key" not in fired("AKIAxxxxxxxxxxxxxxxx")
    assert "aws_access_key" not in fired("AKIA1234")


# ------------------------------------------------------------------------------ personal data


def test_email_address_fires_on_a_real_address_but_not_on_example_domains() -> None:
    assert "email_address" in fired("Write to mark.jensen@nordlicht-logistik.de today")
    assert "email_address" not in fired("Use jane@example.com as the sample address")


@pytest.mark.parametrize(
    "text",
    [
        "Call me on +44 7700 900123",
        "phone (217) 555-0148",
        "Telefon: 030 1234567",
        "mobile 06 12 34 56 78",
        "reach me at +49 89 2150 3377",
    ],
)
def test_phone_number_fires_on_written_phone_numbers(text: str) -> None:
    assert "phone_number" in fired(text)


@pytest.mark.parametrize(
    "text",
    [
        "version 2.14.3 released on 2024-05-01",
        "order 030 1234567 shipped",  # national format without any phone context
        "the total was 1,234,567",
        "ISBN 978-3-16-148410-0",
    ],
)
def test_phone_number_ignores_other_numbers(text: str) -> None:
    assert "phone_number" not in fired(text)


@pytest.mark.parametrize(
    "text",
    [
        "I moved to 221 Elm Street, Springfield, IL 62704.",
        "Bitte an Bahnhofstraße 12, 80335 München schicken",
        "Envoyez-le au 12 rue de la Paix",
        "Vivo en Calle Mayor 3, Madrid",
        "〒100-0001 東京都千代田区",
    ],
)
def test_postal_address_fires_on_street_addresses(text: str) -> None:
    assert "postal_address" in fired(text)


def test_postal_address_ignores_plain_prose() -> None:
    assert "postal_address" not in fired("We walked down the street to 3 different shops.")


def test_person_with_contact_needs_a_name_and_a_contact_detail() -> None:
    assert "person_with_contact" in fired("Mrs. Okafor (ngozi.okafor@gmail.com) complained")
    assert "person_with_contact" not in fired("Mrs. Okafor complained about the app")


def test_health_data_fires_on_medical_terms_in_several_languages() -> None:
    assert "health_data" in fired("My doctor diagnosed me with type 2 diabetes")
    assert "health_data" in fired("Krankschreibung bis Freitag")
    assert "health_data" in fired("持病があります")
    assert "health_data" not in fired("Our app had a healthy quarter")


def test_confidential_is_the_level_of_personal_data() -> None:
    assert level("Contact: Julia Becker, julia.becker@posteo.de") == "confidential"


# ------------------------------------------------------------------------------ internal


def test_internal_markers_hosts_and_private_ips_make_a_prompt_internal() -> None:
    assert level("Internal only: the launch date moves") == "internal"
    assert level("the worker on worker-3.payments.internal died") == "internal"
    assert level("ssh to 10.20.4.17 and restart") == "internal"
    assert level("Vertraulich: neue Preise ab Juli") == "internal"


def test_plain_prompt_is_public() -> None:
    assert detect("Write a haiku about autumn") == ((), "public")


# ------------------------------------------------------------------------------ contract


def test_detect_returns_only_detector_names_never_matched_text() -> None:
    text = "card 4111 1111 1111 1111, mail a.b@firma.de, key AKIA4Q2ZJX7LMN3BV8RT"
    names, sensitivity = detect(text)
    known = {detector.name for detector in DETECTORS}
    assert set(names) <= known
    assert {"payment_card", "email_address", "aws_access_key"} <= set(names)
    assert sensitivity == "restricted"
    assert not any(part in " ".join(names) for part in ("4111", "a.b@", "AKIA4Q"))


def test_highest_level_wins() -> None:
    assert level("Internal only. Her email is a.b@firma.de") == "confidential"
    assert level("Internal only. IBAN DE89 3704 0044 0532 0130 00") == "restricted"

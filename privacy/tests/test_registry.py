from django.db import models

from privacy.registry import LOOKS_PERSONAL, PERSONAL_DATA, looks_personal, unregistered_fields


def test_every_field_that_looks_personal_is_registered():
    missing = unregistered_fields()

    assert missing == [], (
        "These fields look like personal data: add them to privacy/registry.py "
        f"(PERSONAL_DATA, or NOT_PERSONAL with a reason): {missing}"
    )


def test_the_walk_flags_email_and_ip_fields_and_personal_names():
    assert looks_personal(models.EmailField(name="contact"))
    assert looks_personal(models.GenericIPAddressField(name="origin"))
    for name in ("email", "owner_email", "ip", "client_ip", "name", "full_name", "phone"):
        assert LOOKS_PERSONAL.search(name), name
    for name in ("user_agent", "billing_address"):
        assert LOOKS_PERSONAL.search(name), name
    for name in ("created_at", "status", "plan", "zip_code", "description"):
        assert not LOOKS_PERSONAL.search(name), name


def test_a_new_model_with_an_email_field_fails_until_registered():
    class Newsletter(models.Model):
        subscriber = models.EmailField()
        seen_from = models.GenericIPAddressField()

        class Meta:
            app_label = "privacy"

        def __str__(self) -> str:
            return self.subscriber

    try:
        missing = unregistered_fields()
        assert "privacy.Newsletter.subscriber" in missing
        assert "privacy.Newsletter.seen_from" in missing
        PERSONAL_DATA["privacy.Newsletter"] = ["subscriber", "seen_from"]
        assert not [m for m in unregistered_fields() if m.startswith("privacy.Newsletter")]
    finally:
        PERSONAL_DATA.pop("privacy.Newsletter", None)
        from django.apps import apps

        apps.all_models["privacy"].pop("newsletter", None)
        apps.clear_cache()


def test_registered_fields_exist_on_their_models():
    from django.apps import apps

    for label, fields in PERSONAL_DATA.items():
        try:
            model = apps.get_model(label)
        except LookupError:
            continue
        names = {f.name for f in model._meta.get_fields()}
        assert set(fields) <= names, (label, set(fields) - names)

"""The Classification settings page: roles, isolation, CSRF, audited changes, no inline script."""

import pytest
from django.test import Client

from accounts.models import Role
from audit.classification.selectors import classification_settings, tenant_categories
from audit.classification.services import tenant_category_create
from audit.models import AuditEvent, TenantCategory
from conftest import in_tenant, make_user, owner_of, tenant_client
from tenants.models import Tenant
from tenants.services import tenant_host

pytestmark = pytest.mark.django_db

PAGE = "/settings/classification/"
NEW = {
    "key": "contract_review",
    "label": "Contract review",
    "description": "Reviewing contract clauses for legal risk",
    "examples": "Is this liability clause acceptable?\n\nReview the indemnification clause\n",
}


def _category(tenant: Tenant, key: str) -> TenantCategory:
    with in_tenant(tenant):
        tenant_categories()
        return TenantCategory.objects.get(key=key)


def test_viewers_read_categories_and_threshold_without_any_form(tenant_a: Tenant) -> None:
    client = tenant_client(tenant_a, make_user(tenant_a, Role.VIEWER))

    response = client.get(PAGE)

    assert response.status_code == 200
    content = response.content.decode()
    assert "Software development" in content
    assert "software_development" in content
    assert "Write a SQL migration that adds an index on orders.created_at" in content
    assert "flagged for review" in content
    assert "<form" not in content.split("<main", 1)[-1]
    assert "Add a category" not in content
    assert "<script" not in content
    assert 'style="' not in content


def test_the_claude_backend_is_shown_as_off(tenant_a: Tenant) -> None:
    client = tenant_client(tenant_a, make_user(tenant_a, Role.MEMBER))

    content = client.get(PAGE).content.decode()

    assert "Claude through your own Anthropic key" in content
    assert "Off (not available yet)" in content


def test_the_sidebar_links_to_the_page_for_every_role(tenant_a: Tenant) -> None:
    client = tenant_client(tenant_a, make_user(tenant_a, Role.VIEWER))

    content = client.get("/").content.decode()

    assert f'href="{PAGE}"' in content


def test_signed_out_visitors_are_sent_to_sign_in(tenant_a: Tenant) -> None:
    response = tenant_client(tenant_a).get(PAGE)

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MEMBER])
def test_members_and_viewers_cannot_change_anything(tenant_a: Tenant, role: str) -> None:
    client = tenant_client(tenant_a, make_user(tenant_a, role))
    edit = f"{PAGE}categories/translation/"

    assert client.post(f"{PAGE}new-category/", NEW).status_code == 403
    assert client.get(edit).status_code == 403
    assert client.post(edit, {"label": "Renamed"}).status_code == 403
    assert client.post(f"{edit}toggle/").status_code == 403
    assert client.post(f"{PAGE}review/", {"relevance_threshold": "0.9"}).status_code == 403
    with in_tenant(tenant_a):
        assert not TenantCategory.objects.filter(key="contract_review").exists()
        translation = tenant_categories()[6]
        assert (translation.key, translation.label) == ("translation", "Translation")
        assert translation.is_enabled
        assert classification_settings().relevance_threshold == 0.5
        assert not AuditEvent.objects.filter(action__startswith="classification.").exists()


def test_admins_see_forms_and_edit_links(tenant_a: Tenant) -> None:
    client = tenant_client(tenant_a, make_user(tenant_a, Role.ADMIN))

    content = client.get(PAGE).content.decode()

    assert "Add a category" in content
    assert f'href="{PAGE}categories/translation/"' in content
    assert 'name="relevance_threshold"' in content


def test_an_admin_renames_a_category_and_changes_its_examples(tenant_a: Tenant) -> None:
    client = tenant_client(tenant_a, make_user(tenant_a, Role.ADMIN))
    edit = f"{PAGE}categories/software_development/"

    form = client.get(edit)
    response = client.post(
        edit,
        {
            "label": "Engineering",
            "description": "Code and infrastructure work",
            "examples": "Fix this failing test\nExplain this stack trace\n",
        },
    )

    assert form.status_code == 200
    assert "Write a SQL migration" in form.content.decode()
    assert response.status_code == 302
    category = _category(tenant_a, "software_development")
    assert category.label == "Engineering"
    assert category.examples == ["Fix this failing test", "Explain this stack trace"]
    with in_tenant(tenant_a):
        event = AuditEvent.objects.get(action="classification.category_updated")
        assert event.changes["label"] == ["Software development", "Engineering"]


def test_an_admin_disables_and_enables_a_category(tenant_a: Tenant) -> None:
    client = tenant_client(tenant_a, make_user(tenant_a, Role.ADMIN))
    toggle = f"{PAGE}categories/personal/toggle/"

    client.post(toggle)
    disabled = _category(tenant_a, "personal").is_enabled
    page = client.get(PAGE).content.decode()
    client.post(toggle)

    assert disabled is False
    assert "Disabled" in page
    assert _category(tenant_a, "personal").is_enabled
    with in_tenant(tenant_a):
        assert AuditEvent.objects.filter(action="classification.category_updated").count() == 2


def test_the_last_enabled_category_cannot_be_disabled(tenant_a: Tenant) -> None:
    with in_tenant(tenant_a):
        tenant_categories()
        TenantCategory.objects.exclude(key="summarization").update(is_enabled=False)
    client = tenant_client(tenant_a, make_user(tenant_a, Role.ADMIN))

    response = client.post(f"{PAGE}categories/summarization/toggle/", follow=True)

    assert "At least one category must stay enabled." in response.content.decode()
    assert _category(tenant_a, "summarization").is_enabled


def test_an_admin_adds_a_custom_category_with_examples(tenant_a: Tenant) -> None:
    client = tenant_client(tenant_a, make_user(tenant_a, Role.ADMIN))

    response = client.post(f"{PAGE}new-category/", NEW)

    assert response.status_code == 302
    category = _category(tenant_a, "contract_review")
    assert category.label == "Contract review"
    assert not category.is_default
    assert category.examples == [
        "Is this liability clause acceptable?",
        "Review the indemnification clause",
    ]
    with in_tenant(tenant_a):
        assert AuditEvent.objects.filter(action="classification.category_created").count() == 1
    assert "Contract review" in client.get(PAGE).content.decode()


def test_a_custom_category_needs_a_valid_unused_key_and_a_description_or_examples(
    tenant_a: Tenant,
) -> None:
    client = tenant_client(tenant_a, make_user(tenant_a, Role.ADMIN))

    bad_key = client.post(f"{PAGE}new-category/", {**NEW, "key": "1-bad"})
    empty = client.post(f"{PAGE}new-category/", {**NEW, "description": "", "examples": ""})
    duplicate = client.post(f"{PAGE}new-category/", {**NEW, "key": "translation"})

    assert bad_key.status_code == 200
    assert "lower-case letters" in bad_key.content.decode()
    assert "Give a description or at least one example." in empty.content.decode()
    assert "exists already" in duplicate.content.decode()
    with in_tenant(tenant_a):
        assert not TenantCategory.objects.filter(is_default=False).exists()


def test_an_admin_sets_the_review_threshold_and_turns_flagging_off(tenant_a: Tenant) -> None:
    client = tenant_client(tenant_a, make_user(tenant_a, Role.ADMIN))

    response = client.post(f"{PAGE}review/", {"relevance_threshold": "0.35"})

    assert response.status_code == 302
    with in_tenant(tenant_a):
        settings = classification_settings()
        assert settings.relevance_threshold == 0.35
        assert settings.flag_low_relevance is False
        event = AuditEvent.objects.get(action="classification.settings_updated")
        assert event.changes["relevance_threshold"] == [0.5, 0.35]


def test_a_threshold_outside_zero_to_one_is_refused(tenant_a: Tenant) -> None:
    client = tenant_client(tenant_a, make_user(tenant_a, Role.ADMIN))

    response = client.post(
        f"{PAGE}review/", {"relevance_threshold": "1.5", "flag_low_relevance": "on"}
    )

    assert response.status_code == 200
    assert "less than or equal to 1" in response.content.decode()
    with in_tenant(tenant_a):
        assert classification_settings().relevance_threshold == 0.5


def test_a_category_of_another_tenant_is_not_found(tenant_a: Tenant, tenant_b: Tenant) -> None:
    with in_tenant(tenant_b):
        tenant_category_create(
            owner_of(tenant_b),
            key="b_only_topic",
            label="B only",
            description="Only tenant B has this",
            examples=[],
        )
    client = tenant_client(tenant_a, owner_of(tenant_a))
    url = f"{PAGE}categories/b_only_topic/"

    assert client.get(url).status_code == 404
    assert client.post(url, {"label": "Taken over"}).status_code == 404
    assert client.post(f"{url}toggle/").status_code == 404
    assert client.get(f"{PAGE}categories/no_such_category/").status_code == 404
    category = _category(tenant_b, "b_only_topic")
    assert category.label == "B only"
    assert category.is_enabled


def test_changes_without_a_csrf_token_are_refused(tenant_a: Tenant) -> None:
    admin = make_user(tenant_a, Role.ADMIN)
    client = Client(HTTP_HOST=tenant_host(tenant_a), enforce_csrf_checks=True)
    with in_tenant(tenant_a):
        client.force_login(admin)

    assert client.post(f"{PAGE}new-category/", NEW).status_code == 403
    assert client.post(f"{PAGE}categories/personal/toggle/").status_code == 403
    assert client.post(f"{PAGE}review/", {"relevance_threshold": "0.1"}).status_code == 403
    with in_tenant(tenant_a):
        assert not TenantCategory.objects.filter(key="contract_review").exists()
    assert _category(tenant_a, "personal").is_enabled


def test_the_page_is_served_with_a_csp_that_forbids_inline_script(tenant_a: Tenant) -> None:
    client = tenant_client(tenant_a, make_user(tenant_a, Role.ADMIN))

    response = client.get(PAGE)

    policy = response["Content-Security-Policy"]
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[-1].split(";")[0]
    assert "<script" not in response.content.decode()

"""Projects and cost centers: services (rules, audit, config generation) and their pages."""

import pytest
from django.urls import reverse

from accounts.models import Role
from audit.models import AuditEvent
from conftest import in_tenant, make_user, owner_of, tenant_client
from proxy.models import CostCenter, Project
from proxy.services import (
    CONFIG_CHANGED_CHANNEL,
    cost_center_archive,
    cost_center_create,
    cost_center_delete,
    project_archive,
    project_create,
    project_delete,
    proxy_key_create,
)
from tokenscope.lib.errors import Conflict, DomainError, PermissionDenied
from tokenscope.lib.redis import get_redis


def _workspace(tenant):  # type: ignore[no-untyped-def]
    with in_tenant(tenant):
        center = cost_center_create(None, tenant=tenant, code="CC-1", name="Research")
        project = project_create(
            None, tenant=tenant, name="Chatbot", purpose="Support bot", default_cost_center=center
        )
    return project, center


def test_project_create_records_an_audit_event_and_tells_proxies_after_commit(
    tenant_a, django_capture_on_commit_callbacks
) -> None:
    owner = owner_of(tenant_a)
    listener = get_redis().pubsub(ignore_subscribe_messages=True)
    listener.subscribe(CONFIG_CHANGED_CHANNEL)
    listener.get_message(timeout=1)  # the subscription confirmation
    with in_tenant(tenant_a), django_capture_on_commit_callbacks(execute=False) as callbacks:
        project = project_create(owner, tenant=tenant_a, name="Search", purpose="RAG")
        event = AuditEvent.objects.get(action="project.created", object_id=str(project.pk))
    assert event.actor_email == owner.email
    assert listener.get_message(timeout=0.2) is None  # not before commit
    for callback in callbacks:
        callback()
    message = listener.get_message(timeout=2)
    listener.close()
    assert message is not None
    assert message["data"].decode() == tenant_a.short_id


def test_names_and_codes_are_unique_in_a_tenant_but_not_across_tenants(tenant_a, tenant_b) -> None:
    _workspace(tenant_a)
    with in_tenant(tenant_a), pytest.raises(Conflict):
        project_create(None, tenant=tenant_a, name="chatbot")
    with in_tenant(tenant_a), pytest.raises(Conflict):
        cost_center_create(None, tenant=tenant_a, code="cc-1", name="Other")
    _workspace(tenant_b)


def test_a_referenced_project_or_cost_center_cannot_be_deleted_only_archived(tenant_a) -> None:
    project, center = _workspace(tenant_a)
    with in_tenant(tenant_a):
        proxy_key_create(None, tenant=tenant_a, project=project, cost_center=center)
        with pytest.raises(Conflict, match="archive it instead"):
            project_delete(None, tenant=tenant_a, project=project)
        with pytest.raises(Conflict, match="archive it instead"):
            cost_center_delete(None, tenant=tenant_a, cost_center=center)
        project_archive(None, tenant=tenant_a, project=project)
        cost_center_archive(None, tenant=tenant_a, cost_center=center)
        assert Project.objects.get(pk=project.pk).is_archived
        assert CostCenter.objects.get(pk=center.pk).is_archived
        actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"project.archived", "cost_center.archived"} <= actions


def test_an_unreferenced_project_can_be_deleted(tenant_a) -> None:
    with in_tenant(tenant_a):
        project = project_create(None, tenant=tenant_a, name="Scratch")
        project_delete(None, tenant=tenant_a, project=project)
        assert not Project.objects.filter(name="Scratch").exists()
        assert AuditEvent.objects.filter(action="project.deleted").exists()


def test_archived_projects_and_cost_centers_take_no_new_keys(tenant_a) -> None:
    project, center = _workspace(tenant_a)
    with in_tenant(tenant_a):
        project_archive(None, tenant=tenant_a, project=project)
        with pytest.raises(DomainError, match="archived"):
            proxy_key_create(None, tenant=tenant_a, project=project, cost_center=center)


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_members_and_viewers_cannot_manage_projects_or_cost_centers(tenant_a, role) -> None:
    user = make_user(tenant_a, role)
    with in_tenant(tenant_a), pytest.raises(PermissionDenied):
        project_create(user, tenant=tenant_a, name="Nope")
    with in_tenant(tenant_a), pytest.raises(PermissionDenied):
        cost_center_create(user, tenant=tenant_a, code="N", name="Nope")


# ---- pages ------------------------------------------------------------------------------------


def test_an_admin_creates_edits_and_archives_a_project_through_the_pages(tenant_a) -> None:
    client = tenant_client(tenant_a, make_user(tenant_a, Role.ADMIN))
    response = client.post(
        reverse("cost_center_create"), {"code": "FIN-9", "name": "Finance", "owner_email": ""}
    )
    assert response.status_code == 302
    with in_tenant(tenant_a):
        center = CostCenter.objects.get(code="FIN-9")
    response = client.post(
        reverse("project_create"),
        {"name": "Ledger", "purpose": "Classify invoices", "default_cost_center": center.pk},
    )
    assert response.status_code == 302
    with in_tenant(tenant_a):
        project = Project.objects.get(name="Ledger")
    page = client.get(reverse("projects"))
    assert b"Ledger" in page.content
    assert b"FIN-9" in page.content
    response = client.post(
        reverse("project_edit", args=[project.pk]),
        {"name": "Ledger 2", "purpose": "x", "default_cost_center": center.pk},
    )
    assert response.status_code == 302
    client.post(reverse("project_archive", args=[project.pk]), {"archived": "1"})
    client.post(reverse("cost_center_archive", args=[center.pk]), {"archived": "1"})
    with in_tenant(tenant_a):
        project.refresh_from_db()
        center.refresh_from_db()
    assert (project.name, project.is_archived, center.is_archived) == ("Ledger 2", True, True)


def test_a_duplicate_project_name_shows_a_form_error(tenant_a) -> None:
    _workspace(tenant_a)
    client = tenant_client(tenant_a, owner_of(tenant_a))
    response = client.post(reverse("project_create"), {"name": "Chatbot", "purpose": ""})
    assert response.status_code == 200
    assert b"already exists" in response.content


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_members_and_viewers_see_the_lists_but_get_403_on_every_write(tenant_a, role) -> None:
    project, center = _workspace(tenant_a)
    client = tenant_client(tenant_a, make_user(tenant_a, role))
    for name in ("projects", "cost_centers"):
        page = client.get(reverse(name))
        assert page.status_code == 200
        assert b"Chatbot" in page.content or b"CC-1" in page.content
        assert b'<form method="post" action="/projects/new/"' not in page.content
    writes = [
        (reverse("project_create"), {"name": "X"}),
        (reverse("project_edit", args=[project.pk]), {"name": "X"}),
        (reverse("project_archive", args=[project.pk]), {"archived": "1"}),
        (reverse("cost_center_create"), {"code": "X", "name": "X"}),
        (reverse("cost_center_edit", args=[center.pk]), {"code": "X", "name": "X"}),
        (reverse("cost_center_archive", args=[center.pk]), {"archived": "1"}),
    ]
    for url, data in writes:
        assert client.post(url, data).status_code == 403, url
    with in_tenant(tenant_a):
        assert Project.objects.get(pk=project.pk).name == "Chatbot"


def test_another_tenants_project_and_cost_center_ids_give_404(tenant_a, tenant_b) -> None:
    project, center = _workspace(tenant_a)
    with in_tenant(tenant_b):
        # Make sure B has no rows with the same ids by chance.
        Project.objects.filter(pk=project.pk).delete()
        CostCenter.objects.filter(pk=center.pk).delete()
    client = tenant_client(tenant_b, owner_of(tenant_b))
    urls = [
        ("get", reverse("project_edit", args=[project.pk])),
        ("post", reverse("project_archive", args=[project.pk])),
        ("get", reverse("cost_center_edit", args=[center.pk])),
        ("post", reverse("cost_center_archive", args=[center.pk])),
    ]
    for method, url in urls:
        assert getattr(client, method)(url).status_code == 404, url
    assert b"Chatbot" not in client.get(reverse("projects")).content


def test_workspace_pages_send_anonymous_visitors_to_sign_in(tenant_a) -> None:
    anonymous = tenant_client(tenant_a)
    for name in ("projects", "cost_centers", "proxy_keys", "anthropic_key", "onboarding"):
        response = anonymous.get(reverse(name))
        assert response.status_code == 302
        assert "/accounts/login/" in response["Location"]

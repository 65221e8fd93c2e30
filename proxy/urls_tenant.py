"""Workspace pages on tenant hosts (included from tokenscope/urls_tenant.py)."""

from django.urls import path

from proxy import views

urlpatterns = [
    path("get-started/", views.onboarding, name="onboarding"),
    path("keys/", views.proxy_keys, name="proxy_keys"),
    path("keys/new/", views.proxy_key_create, name="proxy_key_create"),
    path("keys/<uuid:key_id>/revoke/", views.proxy_key_revoke, name="proxy_key_revoke"),
    path("projects/", views.projects, name="projects"),
    path("projects/new/", views.project_create, name="project_create"),
    path("projects/<int:project_id>/", views.project_edit, name="project_edit"),
    path("projects/<int:project_id>/archive/", views.project_archive, name="project_archive"),
    path("cost-centers/", views.cost_centers, name="cost_centers"),
    path("cost-centers/new/", views.cost_center_create, name="cost_center_create"),
    path("cost-centers/<int:cost_center_id>/", views.cost_center_edit, name="cost_center_edit"),
    path(
        "cost-centers/<int:cost_center_id>/archive/",
        views.cost_center_archive,
        name="cost_center_archive",
    ),
    path("anthropic-key/", views.anthropic_key, name="anthropic_key"),
    path("anthropic-key/set/", views.anthropic_key_set, name="anthropic_key_set"),
    path(
        "anthropic-key/<uuid:credential_id>/delete/",
        views.anthropic_key_delete,
        name="anthropic_key_delete",
    ),
]

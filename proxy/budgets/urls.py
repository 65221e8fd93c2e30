"""Budget pages on tenant hosts (included from tokenscope/urls_tenant.py)."""

from django.urls import path

from proxy.budgets import views

urlpatterns = [
    path("budgets/", views.budgets, name="budgets"),
    path("budgets/new/", views.budget_create, name="budget_create"),
    path("budgets/<int:budget_id>/", views.budget_edit, name="budget_edit"),
    path("budgets/<int:budget_id>/delete/", views.budget_delete, name="budget_delete"),
    path("budgets/settings/", views.spend_settings, name="spend_settings"),
    path("notifications/", views.notifications, name="notifications"),
]

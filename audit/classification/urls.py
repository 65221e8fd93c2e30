"""Classification settings pages on tenant hosts (included from tokenscope/urls_tenant.py)."""

from django.urls import path

from audit.classification import views

urlpatterns = [
    path("settings/classification/", views.classification, name="classification"),
    path(
        "settings/classification/new-category/",
        views.category_create,
        name="classification_category_create",
    ),
    path(
        "settings/classification/categories/<slug:key>/",
        views.category_edit,
        name="classification_category_edit",
    ),
    path(
        "settings/classification/categories/<slug:key>/toggle/",
        views.category_toggle,
        name="classification_category_toggle",
    ),
    path(
        "settings/classification/review/",
        views.settings_save,
        name="classification_settings",
    ),
]

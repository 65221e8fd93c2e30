from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters

from accounts.permissions import acting_user, admin_required
from tenants.forms import SignupForm, TenantSettingsForm
from tenants.services import tenant_create, tenant_settings_update, tenant_url
from tokenscope.lib.errors import DomainError


def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "tenants/landing.html")


@sensitive_post_parameters("password")
def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            tenant = tenant_create(
                name=data["company_name"],
                slug=data["slug"],
                owner_name=data["name"],
                owner_email=data["email"],
                owner_password=data["password"],
            )
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            return HttpResponseRedirect(tenant_url(tenant, "/accounts/login/?welcome=1"))
    return render(request, "tenants/signup.html", {"form": form})


@admin_required
def tenant_settings(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    form = TenantSettingsForm(request.POST or None, instance=tenant)
    if request.method == "POST" and form.is_valid():
        values = {field: form.cleaned_data[field] for field in form.Meta.fields}
        # The form worked on the instance; start again from the stored row to diff honestly.
        tenant.refresh_from_db()
        try:
            changed = tenant_settings_update(
                tenant, actor=acting_user(request), request=request, **values
            )
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Settings saved." if changed else "Nothing changed.")
            return redirect("tenant_settings")
    return render(request, "tenants/settings.html", {"form": form})

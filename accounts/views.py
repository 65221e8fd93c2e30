from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from accounts.forms import InvitationForm, JoinForm, RoleForm
from accounts.models import Invitation, User
from accounts.permissions import acting_user, admin_required, viewer_required
from accounts.services import (
    invitation_accept,
    invitation_create,
    invitation_get,
    member_remove,
    member_role_change,
)
from tokenscope.lib.errors import DomainError, NotFound


@viewer_required
def team(request: HttpRequest) -> HttpResponse:
    context = {
        "members": User.objects.filter(is_active=True).order_by("email"),
        "invitations": Invitation.objects.pending().order_by("email"),
        "invite_form": InvitationForm(),
        "role_form": RoleForm(),
    }
    return render(request, "accounts/team.html", context)


@admin_required
@require_POST
def team_invite(request: HttpRequest) -> HttpResponse:
    form = InvitationForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter a valid email address and role.")
        return redirect("team")
    try:
        invitation_create(
            acting_user(request),
            tenant=request.tenant,  # type: ignore[attr-defined]
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            request=request,
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
    return redirect("team")


@admin_required
@require_POST
def team_member_role(request: HttpRequest, user_id: int) -> HttpResponse:
    member = get_object_or_404(User, pk=user_id, is_active=True)
    form = RoleForm(request.POST)
    if form.is_valid():
        try:
            member_role_change(
                acting_user(request),
                member=member,
                role=form.cleaned_data["role"],
                request=request,
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"{member.email} is now {member.get_role_display()}.")
    return redirect("team")


@admin_required
@require_POST
def team_member_remove(request: HttpRequest, user_id: int) -> HttpResponse:
    member = get_object_or_404(User, pk=user_id, is_active=True)
    try:
        member_remove(acting_user(request), member=member, request=request)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{member.email} was removed.")
    return redirect("team")


@sensitive_post_parameters("password")
def team_join(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invitation = invitation_get(token)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    form = JoinForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            invitation_accept(
                token, name=form.cleaned_data["name"], password=form.cleaned_data["password"]
            )
        except DomainError as exc:
            form.add_error("password" if exc.field == "password" else None, exc.message)
        else:
            messages.success(request, "Welcome! Sign in with your new password.")
            return redirect("account_login")
    return render(request, "accounts/join.html", {"form": form, "invitation": invitation})

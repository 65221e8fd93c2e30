import logging

from allauth.account.models import EmailAddress
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import Invitation, Role, User, hash_token
from audit.services import audit_event_record
from tenants.models import Tenant
from tenants.services import tenant_url
from tokenscope.lib.errors import DomainError, NotFound, PermissionDenied

logger = logging.getLogger(__name__)


def _check_may_grant(actor: User, role: str) -> None:
    if not actor.has_role(Role.ADMIN):
        raise PermissionDenied("Only owners and admins can manage the team.")
    if role == Role.OWNER and actor.role != Role.OWNER:
        raise PermissionDenied("Only an owner can make someone an owner.")


def invitation_create(
    actor: User, *, tenant: Tenant, email: str, role: str, request: HttpRequest | None = None
) -> Invitation:
    """Invite a teammate by email; the link carries a token of which only a hash is stored."""
    _check_may_grant(actor, role)
    email = email.strip().lower()
    if User.objects.filter(email=email).exists():
        raise DomainError("This person is already a member.", field="email")
    token = Invitation.new_token()
    with transaction.atomic():
        Invitation.objects.pending().filter(email=email).delete()
        invitation = Invitation.objects.create(
            email=email,
            role=role,
            token_hash=hash_token(token),
            invited_by=actor,
            expires_at=timezone.now() + Invitation.VALIDITY,
        )
        audit_event_record(
            actor,
            action="member.invited",
            object_type="invitation",
            object_id=invitation.pk,
            object_repr=email,
            request=request,
            changes={"role": role},
        )
        link = tenant_url(tenant, f"/team/join/{token}/")
        body = render_to_string(
            "emails/invitation.txt",
            {
                "tenant": tenant,
                "inviter": actor,
                "link": link,
                "role": invitation.get_role_display(),
            },
        )
        transaction.on_commit(
            lambda: send_mail(f"You're invited to {tenant.name} on TokenScope", body, None, [email])
        )
    return invitation


def invitation_get(token: str) -> Invitation:
    try:
        return Invitation.objects.pending().get(token_hash=hash_token(token))
    except Invitation.DoesNotExist as exc:
        raise NotFound("This invitation is invalid or has expired.") from exc


def invitation_accept(token: str, *, name: str, password: str) -> User:
    """Create the invited user; the link proved control of the address, so it is verified."""
    invitation = invitation_get(token)
    probe = User(email=invitation.email, name=name)
    try:
        validate_password(password, user=probe)
    except ValidationError as exc:
        raise DomainError(" ".join(exc.messages), field="password") from exc
    with transaction.atomic():
        claimed = (
            Invitation.objects.pending().filter(pk=invitation.pk).update(accepted_at=timezone.now())
        )
        if not claimed:
            raise NotFound("This invitation is invalid or has expired.")
        user = User.objects.create_user(
            invitation.email, password, name=name.strip(), role=invitation.role
        )
        EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
        audit_event_record(
            user,
            action="member.joined",
            object_type="user",
            object_id=user.pk,
            object_repr=user.email,
            changes={"role": user.role},
        )
    return user


def _owner_count() -> int:
    return User.objects.filter(role=Role.OWNER, is_active=True).count()


def member_role_change(
    actor: User, *, member: User, role: str, request: HttpRequest | None = None
) -> None:
    """Change a teammate's role; owners keep at least one owner."""
    _check_may_grant(actor, role)
    if member.role == Role.OWNER and actor.role != Role.OWNER:
        raise PermissionDenied("Only an owner can change an owner's role.")
    if member.role == Role.OWNER and role != Role.OWNER and _owner_count() <= 1:
        raise DomainError("A tenant needs at least one owner.")
    old = member.role
    if old == role:
        return
    with transaction.atomic():
        member.role = role
        member.save(update_fields=["role"])
        audit_event_record(
            actor,
            action="member.role_changed",
            object_type="user",
            object_id=member.pk,
            object_repr=member.email,
            request=request,
            changes={"role": [old, role]},
        )


def user_sessions_revoke(user: User) -> int:
    """End every session of a user in the current schema."""
    revoked = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk):
            session.delete()
            revoked += 1
    return revoked


def member_remove(actor: User, *, member: User, request: HttpRequest | None = None) -> None:
    """Deactivate a teammate and end their sessions."""
    _check_may_grant(actor, member.role)
    if member.pk == actor.pk:
        raise DomainError("You cannot remove yourself here.")
    if member.role == Role.OWNER and _owner_count() <= 1:
        raise DomainError("A tenant needs at least one owner.")
    with transaction.atomic():
        member.is_active = False
        member.save(update_fields=["is_active"])
        audit_event_record(
            actor,
            action="member.removed",
            object_type="user",
            object_id=member.pk,
            object_repr=member.email,
            request=request,
        )
    user_sessions_revoke(member)

"""Writes for privacy: policy versions and notices, privacy requests, exports, erasure."""

import csv
import io
import json
import logging
import zipfile
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.models import Invitation, Role, User
from audit.models import AuditEvent
from audit.services import audit_event_record
from privacy.adapters import EXPORT_SOURCES, USER_ERASE_HOOKS
from privacy.models import (
    DataExport,
    PolicyNotice,
    PolicyVersion,
    PrivacyRequest,
    PrivacyRequestEvent,
    ProcessingRestriction,
    email_hmac,
    hash_token,
    new_token,
)
from privacy.selectors import accounts_with_email, tenant_notice_recipients
from tenants.models import Tenant
from tokenscope.lib.errors import DomainError, NotFound

logger = logging.getLogger(__name__)

NOTICE_CLAIM_TIMEOUT = timedelta(minutes=10)
# Public form limits: submissions per window, per client address and per email address.
RATE_LIMIT_WINDOW = 60 * 60
RATE_LIMIT_PER_IP = 5
RATE_LIMIT_PER_EMAIL = 3
ERASED_DOMAIN = "erased.invalid"


def public_url(path: str) -> str:
    """An absolute URL on the base domain."""
    port = f":{settings.PUBLIC_PORT}" if settings.PUBLIC_PORT else ""
    return f"{settings.PUBLIC_SCHEME}://{settings.BASE_DOMAIN}{port}{path}"


# ---------------------------------------------------------------- policy versions


def policy_version_validate(*, effective_at: datetime, published_at: datetime) -> None:
    if effective_at < published_at + PolicyVersion.NOTICE_PERIOD:
        earliest = published_at + PolicyVersion.NOTICE_PERIOD
        raise DomainError(
            "A new policy takes effect at least 14 days after publication "
            f"(on or after {earliest:%Y-%m-%d %H:%M} UTC).",
            field="effective_at",
        )


def policy_version_publish(
    *, version: str, text: str, effective_at: datetime, summary: str = ""
) -> PolicyVersion:
    """Publish a policy version and email every tenant's owners and admins about it."""
    from privacy.tasks import policy_notify_all

    published_at = timezone.now()
    policy_version_validate(effective_at=effective_at, published_at=published_at)
    version = version.strip()
    if not version or not text.strip():
        raise DomainError("A version needs a name and a text.")
    if PolicyVersion.objects.filter(version=version).exists():
        raise DomainError(f"Version {version!r} already exists.", field="version")
    with transaction.atomic():
        policy = PolicyVersion.objects.create(
            version=version,
            text=text,
            summary=summary,
            published_at=published_at,
            effective_at=effective_at,
        )
        transaction.on_commit(lambda: policy_notify_all.delay(policy.pk))
    logger.info("policy published version=%s effective=%s", version, effective_at.isoformat())
    return policy


def policy_notices_send(policy: PolicyVersion, tenant: Tenant) -> int:
    """Email the tenant's owners and admins about `policy`, each exactly once (a sent-log)."""
    sent = 0
    subject = f"Our privacy policy changes on {policy.effective_at:%B %-d, %Y}"
    body = render_to_string(
        "privacy/emails/policy_notice.txt",
        {"policy": policy, "tenant": tenant, "link": public_url("/privacy/")},
    )
    for email in tenant_notice_recipients(tenant):
        notice, _ = PolicyNotice.objects.get_or_create(
            policy=policy, tenant=tenant, recipient_hmac=email_hmac(email)
        )
        now = timezone.now()
        claimed = (
            PolicyNotice.objects.filter(pk=notice.pk, sent_at__isnull=True)
            .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - NOTICE_CLAIM_TIMEOUT))
            .update(claimed_at=now)
        )
        if not claimed:
            continue
        send_mail(subject, body, None, [email])
        PolicyNotice.objects.filter(pk=notice.pk).update(sent_at=timezone.now())
        sent += 1
    return sent


# ---------------------------------------------------------------- privacy requests


def _event(
    req: PrivacyRequest, kind: str, *, actor: str = "system", note: str = "", old: str = ""
) -> PrivacyRequestEvent:
    return PrivacyRequestEvent.objects.create(
        request=req,
        kind=kind,
        from_status=old,
        to_status=req.status,
        actor=actor,
        note=note,
    )


def _rate_limited(key: str, limit: int) -> bool:
    cache.add(key, 0, RATE_LIMIT_WINDOW)
    try:
        count = cache.incr(key)
    except ValueError:
        cache.set(key, 1, RATE_LIMIT_WINDOW)
        count = 1
    return count > limit


def privacy_request_submit(
    *, email: str, name: str, type: str, details: str = "", ip: str | None = None
) -> PrivacyRequest:
    """Take a request from the public form; it waits for the emailed verification link."""
    email = email.strip().lower()
    if ip and _rate_limited(f"privacy-request:ip:{ip}", RATE_LIMIT_PER_IP):
        raise DomainError("Too many requests from your network. Try again in an hour.")
    if _rate_limited(f"privacy-request:email:{email_hmac(email)}", RATE_LIMIT_PER_EMAIL):
        raise DomainError("Too many requests for this address. Try again in an hour.")
    if type not in PrivacyRequest.Type.values:
        raise DomainError("Choose a request type.", field="type")
    token = new_token()
    now = timezone.now()
    with transaction.atomic():
        req = PrivacyRequest.objects.create(
            email=email,
            name=name.strip(),
            type=type,
            details=details.strip(),
            received_at=now,
            verify_token_hash=hash_token(token),
            verify_expires_at=now + PrivacyRequest.VERIFY_WINDOW,
        )
        _event(req, "received")
        body = render_to_string(
            "privacy/emails/verify.txt",
            {"req": req, "link": public_url(f"/privacy/request/verify/{token}/")},
        )
        transaction.on_commit(
            lambda: send_mail("Confirm your privacy request", body, None, [email])
        )
    return req


def privacy_request_for_token(token: str) -> PrivacyRequest:
    req = PrivacyRequest.objects.filter(
        verify_token_hash=hash_token(token),
        status=PrivacyRequest.Status.UNVERIFIED,
        verify_expires_at__gt=timezone.now(),
    ).first()
    if req is None:
        raise NotFound("This link is invalid, already used or expired.")
    return req


def privacy_request_verify(token: str) -> PrivacyRequest:
    """The requester controls the address: the request enters the queue with a due date."""
    req = privacy_request_for_token(token)
    now = timezone.now()
    with transaction.atomic():
        claimed = PrivacyRequest.objects.filter(
            pk=req.pk,
            status=PrivacyRequest.Status.UNVERIFIED,
            verify_token_hash=req.verify_token_hash,
        ).update(
            status=PrivacyRequest.Status.OPEN,
            verified_at=now,
            due_at=now + PrivacyRequest.RESPONSE_WINDOW,
            verify_token_hash="",
            ack_sent_at=now,
        )
        if not claimed:
            raise NotFound("This link is invalid, already used or expired.")
        req.refresh_from_db()
        _event(req, "verified", old=PrivacyRequest.Status.UNVERIFIED)
        body = render_to_string("privacy/emails/acknowledgement.txt", {"req": req})
        email = req.email
        transaction.on_commit(
            lambda: send_mail(f"We received your privacy request #{req.pk}", body, None, [email])
        )
        _event(req, "acknowledged", note="Acknowledgement emailed.")
    return req


def privacy_requests_expire(*, now: datetime | None = None) -> int:
    """Unverified requests older than 48 hours expire; their personal fields are cleared."""
    now = now or timezone.now()
    stale = PrivacyRequest.objects.filter(
        status=PrivacyRequest.Status.UNVERIFIED, verify_expires_at__lte=now
    )
    count = 0
    for req in stale:
        with transaction.atomic():
            req.status = PrivacyRequest.Status.EXPIRED
            req.email = ""
            req.name = ""
            req.details = ""
            req.verify_token_hash = ""
            req.save(update_fields=["status", "email", "name", "details", "verify_token_hash"])
            _event(req, "expired", old=PrivacyRequest.Status.UNVERIFIED)
        count += 1
    return count


def _transition(req: PrivacyRequest, status: str, *, kind: str, actor: str, note: str = "") -> None:
    allowed = {
        PrivacyRequest.Status.APPROVED: {PrivacyRequest.Status.OPEN},
        PrivacyRequest.Status.REJECTED: {PrivacyRequest.Status.OPEN},
        PrivacyRequest.Status.COMPLETED: {
            PrivacyRequest.Status.OPEN,
            PrivacyRequest.Status.APPROVED,
        },
    }
    if req.status not in allowed[status]:  # type: ignore[index]
        raise DomainError(f"A request that is {req.get_status_display()} cannot become {status}.")
    old = req.status
    req.status = status
    if status in (PrivacyRequest.Status.COMPLETED, PrivacyRequest.Status.REJECTED):
        req.completed_at = timezone.now()
    req.save(update_fields=["status", "completed_at"])
    _event(req, kind, actor=actor, note=note, old=old)


def privacy_request_approve(req: PrivacyRequest, *, operator: str) -> PrivacyRequest:
    """Approve a verified request; its automatic actions run in a task after commit."""
    from privacy.tasks import privacy_request_execute_task

    with transaction.atomic():
        req = PrivacyRequest.objects.select_for_update().get(pk=req.pk)
        _transition(req, PrivacyRequest.Status.APPROVED, kind="approved", actor=operator)
        transaction.on_commit(lambda: privacy_request_execute_task.delay(req.pk))
    return req


def privacy_request_reject(req: PrivacyRequest, *, operator: str, basis: str) -> PrivacyRequest:
    if not basis.strip():
        raise DomainError("A refusal must give its reasons.")
    with transaction.atomic():
        req = PrivacyRequest.objects.select_for_update().get(pk=req.pk)
        req.denial_basis = basis.strip()
        req.save(update_fields=["denial_basis"])
        _transition(
            req, PrivacyRequest.Status.REJECTED, kind="rejected", actor=operator, note=basis
        )
        body = render_to_string("privacy/emails/rejected.txt", {"req": req})
        email = req.email
        transaction.on_commit(
            lambda: send_mail(f"Your privacy request #{req.pk}", body, None, [email])
        )
    return req


def privacy_request_complete(req: PrivacyRequest, *, operator: str, outcome: str) -> PrivacyRequest:
    with transaction.atomic():
        req = PrivacyRequest.objects.select_for_update().get(pk=req.pk)
        req.outcome = (req.outcome + "\n" + outcome).strip()
        req.save(update_fields=["outcome"])
        _transition(req, PrivacyRequest.Status.COMPLETED, kind="completed", actor=operator)
    return req


def privacy_request_note(req: PrivacyRequest, *, operator: str, notes: str) -> None:
    """Change the operator notes; the change is logged as an event."""
    if notes == req.notes:
        return
    with transaction.atomic():
        PrivacyRequest.objects.filter(pk=req.pk).update(notes=notes)
        req.notes = notes
        _event(req, "note", actor=operator, note=notes, old=req.status)


def privacy_request_execute(req: PrivacyRequest) -> list[str]:
    """Run the automatic actions of an approved request for every tenant account of its email."""
    req = PrivacyRequest.objects.get(pk=req.pk)
    if req.status != PrivacyRequest.Status.APPROVED:
        return []
    accounts = accounts_with_email(req.email)
    done: list[str] = []
    if not accounts:
        _event(req, "no_account", note="No tenant user has this address; answer manually.")
        return done
    Type = PrivacyRequest.Type
    links = []
    for account in accounts:
        tenant = account.tenant
        where = f"tenant {tenant.short_id} user {account.user_id}"
        if req.type in (Type.ACCESS, Type.PORTABILITY, Type.AUDIT_EXPORT):
            export, token = data_export_create(tenant, user_id=account.user_id, request=req)
            links.append(public_url(f"/privacy/export/{token}/"))
            _event(req, "export_ready", note=f"Export {export.pk} for {where}.", old=req.status)
            done.append(f"export:{where}")
        elif req.type == Type.DELETION:
            try:
                user_erase(tenant, user_id=account.user_id, reason=f"privacy request #{req.pk}")
            except DomainError as exc:
                _event(req, "manual_action_needed", note=f"{where}: {exc.message}", old=req.status)
                continue
            _event(req, "erased", note=f"Erased {where}.", old=req.status)
            done.append(f"erased:{where}")
        elif req.type == Type.RESTRICTION:
            ProcessingRestriction.objects.get_or_create(
                tenant=tenant, user_id=account.user_id, lifted_at=None, defaults={"request": req}
            )
            _event(req, "restricted", note=f"Processing restricted for {where}.", old=req.status)
            done.append(f"restricted:{where}")
        else:
            _event(req, "manual_action_needed", note=f"Correct the data of {where} by hand.")
    if links:
        body = render_to_string(
            "privacy/emails/export_ready.txt",
            {"req": req, "links": links, "days": DataExport.VALIDITY.days},
        )
        send_mail(f"Your data export (request #{req.pk})", body, None, [req.email])
    if done and req.type != Type.CORRECTION:
        privacy_request_complete(req, operator="system", outcome="; ".join(done))
    return done


# ---------------------------------------------------------------- exports


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    if rows:
        fields: list[str] = []
        for row in rows:
            fields += [key for key in row if key not in fields]
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
            )
    return out.getvalue()


def personal_data_collect(tenant: Tenant, user_id: int) -> dict[str, list[dict[str, Any]]]:
    """Everything we hold about one tenant user: profile, membership, audit events, sources."""
    with schema_context(tenant.schema_name):
        user = User.objects.get(pk=user_id)
        data: dict[str, list[dict[str, Any]]] = {
            "profile": [
                {
                    "id": user.pk,
                    "email": user.email,
                    "name": user.name,
                    "date_joined": user.date_joined.isoformat(),
                    "last_login": user.last_login.isoformat() if user.last_login else None,
                    "is_active": user.is_active,
                }
            ],
            "memberships": [
                {
                    "workspace": tenant.name,
                    "workspace_id": tenant.short_id,
                    "role": user.role,
                    "since": user.date_joined.isoformat(),
                }
            ],
            "audit_events": [
                {
                    "at": event.created_at.isoformat(),
                    "action": event.action,
                    "object_type": event.object_type,
                    "object_id": event.object_id,
                    "object": event.object_repr,
                    "ip_address": event.ip_address,
                    "changes": event.changes,
                }
                for event in AuditEvent.objects.filter(actor_id=user.pk).order_by("created_at")
            ],
        }
        for name, source in sorted(EXPORT_SOURCES.items()):
            data[name] = source(tenant, user)
    return data


README = """This archive holds the personal data AI TokenScope keeps about you in one workspace.
Each part is given twice: as JSON (data.json) and as CSV (one file per part).
Invoices and payment records are kept by Paddle, our merchant of record: ask Paddle for them.
"""


def data_export_create(
    tenant: Tenant, *, user_id: int, request: PrivacyRequest | None = None
) -> tuple[DataExport, str]:
    """Build a ZIP (JSON + CSV) of a user's data; the token is the single-use download link."""
    data = personal_data_collect(tenant, user_id)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", README)
        archive.writestr("data.json", json.dumps(data, indent=2, default=str))
        for part, rows in data.items():
            archive.writestr(f"{part}.csv", _csv(rows))
    content = buffer.getvalue()
    token = new_token()
    now = timezone.now()
    export = DataExport.objects.create(
        tenant=tenant,
        subject_user_id=user_id,
        request=request,
        token_hash=hash_token(token),
        content=content,
        size=len(content),
        created_at=now,
        expires_at=now + DataExport.VALIDITY,
    )
    return export, token


def data_export_download(token: str) -> bytes:
    """The export's ZIP, once: the link then stops working and the file is dropped."""
    with transaction.atomic():
        export = (
            DataExport.objects.select_for_update()
            .filter(
                token_hash=hash_token(token),
                downloaded_at__isnull=True,
                expires_at__gt=timezone.now(),
            )
            .first()
        )
        if export is None:
            raise NotFound("This download link is invalid, already used or expired.")
        content = bytes(export.content)
        export.downloaded_at = timezone.now()
        export.content = b""
        export.save(update_fields=["downloaded_at", "content"])
        if export.request_id:
            PrivacyRequestEvent.objects.create(
                request_id=export.request_id,
                kind="export_downloaded",
                note=f"Export {export.pk} downloaded.",
                to_status=export.request.status if export.request else "",
            )
    return content


# ---------------------------------------------------------------- erasure


def _owner_count() -> int:
    return User.objects.filter(role=Role.OWNER, is_active=True).count()


def user_erase(tenant: Tenant, *, user_id: int, reason: str) -> None:
    """Anonymise a tenant user: personal fields removed, sessions ended, metrics kept."""
    from allauth.account.models import EmailAddress
    from allauth.mfa.models import Authenticator

    with schema_context(tenant.schema_name), transaction.atomic():
        user = User.objects.select_for_update().get(pk=user_id)
        if user.role == Role.OWNER and user.is_active and _owner_count() <= 1:
            raise DomainError(
                "The last owner cannot be erased: transfer ownership or delete the workspace."
            )
        old_email = user.email
        user.email = f"erased-{user.pk}@{ERASED_DOMAIN}"
        user.name = ""
        user.is_active = False
        user.last_login = None
        user.set_unusable_password()
        user.save()
        EmailAddress.objects.filter(user=user).delete()
        Authenticator.objects.filter(user=user).delete()
        Invitation.objects.filter(email__iexact=old_email).delete()
        AuditEvent.objects.filter(actor_id=user.pk).update(actor_email="", ip_address=None)
        AuditEvent.objects.filter(object_repr__iexact=old_email).update(object_repr="erased user")
        for session in Session.objects.all().iterator():
            if str(session.get_decoded().get("_auth_user_id")) == str(user.pk):
                session.delete()
        audit_event_record(
            None,
            action="member.erased",
            object_type="user",
            object_id=user.pk,
            object_repr="erased user",
            changes={"reason": reason},
        )
    for hook in USER_ERASE_HOOKS:
        with schema_context(tenant.schema_name):
            hook(tenant, user_id)
    DataExport.objects.filter(tenant=tenant, subject_user_id=user_id).delete()


def user_self_delete(
    user: User, *, tenant: Tenant, password: str, request: HttpRequest | None = None
) -> None:
    """A user deletes their own account after re-entering their password."""
    if not user.check_password(password):
        raise DomainError("The password is not correct.", field="password")
    user_erase(tenant, user_id=user.pk, reason="deleted by the user")


# ---------------------------------------------------------------- retention settings


def tenant_retention_set(
    tenant: Tenant, *, actor: User, days: int | None, request: HttpRequest | None = None
) -> bool:
    """An owner shortens the retention (never beyond the plan); None restores the plan's."""
    if actor.role != Role.OWNER:
        raise DomainError("Only an owner can change the retention period.")
    plan_days = tenant.plan.retention_days
    if days is not None and not 1 <= days <= plan_days:
        raise DomainError(
            f"Choose between 1 and {plan_days} days (your plan's period).", field="retention_days"
        )
    if days == plan_days:
        days = None
    old = tenant.retention_days_override
    if old == days:
        return False
    with transaction.atomic():
        tenant.retention_days_override = days
        tenant.save(update_fields=["retention_days_override"])
        with schema_context(tenant.schema_name):
            audit_event_record(
                actor,
                action="tenant.retention_changed",
                object_type="tenant",
                object_id=tenant.short_id,
                object_repr=tenant.name,
                request=request,
                changes={"retention_days_override": [old, days]},
            )
    return True

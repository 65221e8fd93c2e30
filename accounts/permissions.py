"""Role checks for tenant views: every tenant page names the least role that may see it."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from accounts.models import Role, User

View = Callable[..., HttpResponse]


def acting_user(request: HttpRequest) -> User:
    """The signed-in user of a view guarded by `role_required`."""
    assert isinstance(request.user, User)
    return request.user


def role_required(minimum: str) -> Callable[[View], View]:
    """Allow signed-in users of the current tenant whose role is at least `minimum`."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not acting_user(request).has_role(minimum):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapped.minimum_role = minimum  # type: ignore[attr-defined]
        return wrapped

    return decorator


viewer_required = role_required(Role.VIEWER)
member_required = role_required(Role.MEMBER)
admin_required = role_required(Role.ADMIN)
owner_required = role_required(Role.OWNER)

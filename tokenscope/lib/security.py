"""Security headers our pages share: a strict Content-Security-Policy and a Permissions-Policy."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

DEFAULT_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "font-src": ["'self'"],
    "frame-src": ["'none'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
    "base-uri": ["'none'"],
    "object-src": ["'none'"],
}


def build_csp(extra: dict[str, list[str]] | None = None) -> str:
    policy = {name: list(sources) for name, sources in DEFAULT_CSP.items()}
    for name, sources in (extra or {}).items():
        kept = [s for s in policy.get(name, []) if s != "'none'"]
        policy[name] = kept + sources
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in policy.items())


class SecurityHeadersMiddleware:
    """Adds CSP to every response; a view may widen it by setting `response.csp_extra`."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response["Content-Security-Policy"] = build_csp(getattr(response, "csp_extra", None))
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        return response

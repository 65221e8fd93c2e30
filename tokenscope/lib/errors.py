"""One error hierarchy for domain rules; views and the API map it to responses."""


class DomainError(Exception):
    """A rule of the product refused an action; the message is safe to show to the user."""

    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    code = "not_found"


class PermissionDenied(DomainError):
    code = "permission_denied"


class Conflict(DomainError):
    code = "conflict"

"""Our own proxy errors, in Anthropic's shape so the SDKs raise the right exception."""

import json
import secrets

# Which of our errors a client should retry (x-should-retry), by error type.
RETRYABLE = frozenset({"api_error", "overloaded_error", "timeout_error", "rate_limit_error"})


def new_request_id() -> str:
    return "req_ts_" + secrets.token_hex(12)


class ProxyError(Exception):
    """Ends an exchange with an Anthropic-shaped error response."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        retry: bool | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.retry = error_type in RETRYABLE if retry is None else retry
        self.headers = headers or {}

    def body(self, request_id: str) -> bytes:
        return json.dumps(
            {
                "type": "error",
                "error": {"type": self.error_type, "message": self.message},
                "request_id": request_id,
            }
        ).encode()


def not_found(message: str) -> ProxyError:
    return ProxyError(404, "not_found_error", message)


def invalid_request(message: str) -> ProxyError:
    return ProxyError(400, "invalid_request_error", message)


def authentication_failed() -> ProxyError:
    # One message for every reason, so a caller learns nothing about which keys exist.
    return ProxyError(401, "authentication_error", "Invalid, revoked or expired TokenScope key.")


def permission_denied(message: str) -> ProxyError:
    return ProxyError(403, "permission_error", message)

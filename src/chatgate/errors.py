"""One error hierarchy for the whole gateway, rendered in OpenAI's error shape.

    GatewayError                      500 internal_error
    ├── ConfigError                   (start-up only: printed as one line, exit 2)
    ├── InvalidRequestError           400 invalid_request_error
    │   ├── PayloadTooLargeError      413
    │   ├── UnsupportedMediaTypeError 415 (a JSON API sent something else)
    │   └── MisdirectedRequestError   421 (a Host this server does not answer for)
    ├── AuthenticationError           401
    ├── PermissionDeniedError         403
    ├── NotFoundError                 404
    │   └── ModelNotFoundError        404 model_not_found
    ├── MethodNotAllowedError         405
    ├── RateLimitError                429 (carries retry_after)
    │   └── QuotaExceededError        429 insufficient_quota
    ├── ServiceUnavailableError       503 (queue timeout, shutting down; carries retry_after)
    │   └── DatabaseUnavailableError  503 database_unavailable (the database does not answer)
    └── UpstreamError                 502 (upstream said no, or the connection broke)
        └── UpstreamTimeoutError      504

Provider code turns HTTP client exceptions into these at its own boundary; the API layer renders
them with :meth:`GatewayError.to_body` in one place.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GatewayError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "internal_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.retry_after = retry_after

    def to_body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        # Retry-After is whole seconds; round up so a client never retries too early.
        seconds = max(1, int(-(-self.retry_after // 1)))
        return {"Retry-After": str(seconds)}


class ConfigError(GatewayError):
    """A bad configuration value; ``field`` names it (dotted path)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message, param=field)
        self.field = field


class InvalidRequestError(GatewayError):
    status = 400
    type = "invalid_request_error"


class PayloadTooLargeError(InvalidRequestError):
    status = 413
    default_code = "request_too_large"


class UnsupportedMediaTypeError(InvalidRequestError):
    status = 415
    default_code = "unsupported_media_type"


class MisdirectedRequestError(InvalidRequestError):
    status = 421
    default_code = "host_not_allowed"


class AuthenticationError(GatewayError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(GatewayError):
    status = 403
    type = "permission_error"


class NotFoundError(GatewayError):
    status = 404
    type = "invalid_request_error"
    default_code = "not_found"


class MethodNotAllowedError(GatewayError):
    status = 405
    type = "invalid_request_error"
    default_code = "method_not_allowed"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist or you do not have access to it.", param="model"
        )


class RateLimitError(GatewayError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class QuotaExceededError(RateLimitError):
    type = "insufficient_quota"
    default_code = "insufficient_quota"


class ServiceUnavailableError(GatewayError):
    status = 503
    type = "service_unavailable"
    default_code = "service_unavailable"


class DatabaseUnavailableError(ServiceUnavailableError):
    """The database cannot be reached (down, restarting, out of connections): raised where the
    storage layer meets the driver (``storage/db.py``), so every door answers 503 for it."""

    default_code = "database_unavailable"

    def __init__(self, message: str = "The database is unavailable; try again shortly.") -> None:
        super().__init__(message, retry_after=2)


class UpstreamError(GatewayError):
    """The upstream failed; ``upstream_status`` keeps its HTTP status when it gave one, and
    ``sent`` is False when the request never reached it (no connection could be made), so
    trying again cannot make it do — and bill — the work twice."""

    status = 502
    type = "upstream_error"
    default_code = "bad_gateway"

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
        sent: bool = True,
    ) -> None:
        super().__init__(message, retry_after=retry_after, code=code)
        self.upstream_status = upstream_status
        self.sent = sent


class UpstreamTimeoutError(UpstreamError):
    status = 504
    default_code = "upstream_timeout"


def client_error(err: UpstreamError) -> GatewayError:
    """What the client should see once retries and fallbacks have given up on ``err``.

    A client mistake the upstream noticed (400, 404, 413, 422) is the client's to fix, so it keeps
    its meaning; the upstream's own trouble (its 401/403 means *our* key is bad, 5xx) stays a 502,
    never the upstream's auth error passed off as the client's; 429 stays a 429.
    """
    status = err.upstream_status
    if status in (400, 422):
        return InvalidRequestError(err.message, code=err.code)
    if status == 404:
        return NotFoundError(err.message)
    if status == 413:
        return PayloadTooLargeError(err.message)
    if status == 429:
        return RateLimitError(err.message, retry_after=err.retry_after)
    return err

"""API errors and their rest-json wire form, so boto3 raises the modeled exception class with our message.

A handler raises one of these; the server turns it into a response with the status, the
``x-amzn-ErrorType`` header (which boto3 reads as ``Error.Code`` and maps to
``client.exceptions.<Code>``) and a JSON body carrying the message under both spellings
AWS services use (``Message`` for Pinpoint, ``message`` for SESv2).
"""

from __future__ import annotations

import json

from pydantic import ValidationError


class ApiError(Exception):
    """An error the API returns to the caller.

    Subclasses fix ``code`` and ``status``; raise them with a message that says what to fix.
    For a one-off modeled error without a subclass, pass ``code`` and ``status`` explicitly.

    Attributes:
        code: The ``x-amzn-ErrorType`` (the exception name boto3 raises, e.g. ``BadRequestException``).
        status: The HTTP status.
        message: What is wrong and what to do about it.
    """

    code: str = "InternalServerErrorException"
    status: int = 500

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.status}, {self.message!r})"

    def body(self, request_id: str) -> bytes:
        """The JSON error body.

        Args:
            request_id: The request's id, echoed so a caller can quote it.

        Returns:
            ``{"Message": ..., "message": ..., "RequestID": ...}`` as UTF-8 JSON.
        """
        return json.dumps(
            {"Message": self.message, "message": self.message, "RequestID": request_id}, ensure_ascii=False
        ).encode()

    def headers(self, request_id: str) -> dict[str, str]:
        """The response headers of the error (boto3 reads the error code from ``x-amzn-ErrorType``).

        Args:
            request_id: The request's id.

        Returns:
            Content type, error type and request id headers.
        """
        return {
            "Content-Type": "application/json",
            "x-amzn-ErrorType": self.code,
            "x-amzn-RequestId": request_id,
        }


class BadRequestError(ApiError):
    """400: the request is malformed or invalid."""

    code, status = "BadRequestException", 400


def invalid(what: str, err: ValidationError) -> BadRequestError:
    """A BadRequestError listing every field pydantic rejected, by its path (``Limits.Daily: ...``).

    Args:
        what: What was invalid, e.g. ``"journey"``.
        err: The validation error of the request's model.
    """
    problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
    return BadRequestError(f"Invalid {what}: " + "; ".join(problems))


class NotFoundError(ApiError):
    """404: the resource (or the API path) does not exist."""

    code, status = "NotFoundException", 404


class ConflictError(ApiError):
    """409: the resource's current state does not allow this."""

    code, status = "ConflictException", 409


class ForbiddenError(ApiError):
    """403: the caller may not do this."""

    code, status = "ForbiddenException", 403


class MethodNotAllowedError(ApiError):
    """405: the HTTP method is wrong for the path, or sojourn does not implement the operation yet."""

    code, status = "MethodNotAllowedException", 405


class PayloadTooLargeError(ApiError):
    """413: the request body is too large."""

    code, status = "PayloadTooLargeException", 413


class TooManyRequestsError(ApiError):
    """429: too many requests; retry later (boto3 retries this code)."""

    code, status = "TooManyRequestsException", 429


class InternalServerError(ApiError):
    """500: something failed on our side; the request id finds it in the logs.

    For a service whose model names its 500 error differently (SESv2: ``InternalServiceErrorException``)
    the server sends that service's name, so boto3 still raises the modeled class.
    """

    code, status = "InternalServerErrorException", 500


class AlreadyExistsError(ApiError):
    """400: the resource already exists (SESv2's ``AlreadyExistsException``)."""

    code, status = "AlreadyExistsException", 400


class LimitExceededError(ApiError):
    """400: a quota would be exceeded (SESv2's ``LimitExceededException``)."""

    code, status = "LimitExceededException", 400


class AuthError(ApiError):
    """403: authentication failed (the codes AWS returns; boto3 raises a plain ClientError with them)."""

    status = 403


class MissingAuthenticationTokenError(AuthError):
    """403: the request carries no SigV4 ``Authorization`` header."""

    code = "MissingAuthenticationTokenException"


class IncompleteSignatureError(AuthError):
    """403: the ``Authorization`` header is malformed or lacks a part."""

    code = "IncompleteSignatureException"


class UnrecognizedClientError(AuthError):
    """403: the access key id is not the configured one."""

    code = "UnrecognizedClientException"


class InvalidSignatureError(AuthError):
    """403: the signature does not match (wrong secret, altered request) or the request is too old or too new."""

    code = "InvalidSignatureException"


#: Every error class by code, for tests and for mapping a code back to its class.
ERRORS_BY_CODE: dict[str, type[ApiError]] = {
    cls.code: cls
    for cls in (
        BadRequestError,
        NotFoundError,
        ConflictError,
        ForbiddenError,
        MethodNotAllowedError,
        PayloadTooLargeError,
        TooManyRequestsError,
        InternalServerError,
        AlreadyExistsError,
        LimitExceededError,
        MissingAuthenticationTokenError,
        IncompleteSignatureError,
        UnrecognizedClientError,
        InvalidSignatureError,
    )
}

__all__ = [
    "ERRORS_BY_CODE",
    "AlreadyExistsError",
    "ApiError",
    "AuthError",
    "BadRequestError",
    "ConflictError",
    "ForbiddenError",
    "IncompleteSignatureError",
    "InternalServerError",
    "InvalidSignatureError",
    "LimitExceededError",
    "MethodNotAllowedError",
    "MissingAuthenticationTokenError",
    "NotFoundError",
    "PayloadTooLargeError",
    "TooManyRequestsError",
    "UnrecognizedClientError",
]

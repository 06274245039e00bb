"""SESv2's account-level suppression list: Put/Get/Delete/ListSuppressedDestinations, the account's
SuppressedReasons (PutAccountSuppressionAttributes) and GetAccount."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sojourn.api.errors import ApiError, BadRequestError, NotFoundError
from sojourn.api.server import Handler, RequestContext
from sojourn.store import suppression_repo

_ADDRESS = re.compile(r"[^@\s<>(),;:\"]+@[^@\s<>(),;:\"]+\.[^@\s<>(),;:\"]+")
_PAGE_SIZE_MAX = 1000


class InvalidNextTokenError(ApiError):
    """400: the NextToken was not returned by this API (SESv2's ``InvalidNextTokenException``)."""

    code, status = "InvalidNextTokenException", 400


def checked_address(value: Any) -> str:
    """An email address from the request, normalised (trimmed, lower-cased).

    Raises:
        BadRequestError: it is not an email address.
    """
    address = str(value or "").strip()
    if not _ADDRESS.fullmatch(address):
        raise BadRequestError(
            f"EmailAddress {address!r} is not a valid email address; use e.g. ana@example.com"
        )
    return suppression_repo.normalize_address(address)


def checked_reasons(values: Iterable[Any], field: str) -> list[str]:
    """Reasons from the request, each BOUNCE or COMPLAINT.

    Raises:
        BadRequestError: a value is neither.
    """
    reasons = [str(v) for v in values]
    for reason in reasons:
        if reason not in suppression_repo.REASONS:
            raise BadRequestError(f"{field} {reason!r} is not a valid reason; use BOUNCE or COMPLAINT")
    return reasons


async def put_suppressed_destination(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """PutSuppressedDestination: add the address to the list, or change its reason."""
    address = checked_address(params.get("EmailAddress"))
    (reason,) = checked_reasons([params.get("Reason")], "Reason")
    async with ctx.state.db.begin() as conn:
        await suppression_repo.put(conn, address, reason)
    return {}


async def get_suppressed_destination(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetSuppressedDestination."""
    address = checked_address(params.get("EmailAddress"))
    async with ctx.state.db.connect() as conn:
        entry = await suppression_repo.get(conn, address)
    if entry is None:
        raise NotFoundError(f"Email address {address} does not exist on your suppression list.")
    attributes = {
        k: v for k, v in (("MessageId", entry.message_id), ("FeedbackId", entry.feedback_id)) if v is not None
    }
    destination: dict[str, Any] = {
        "EmailAddress": entry.email_address,
        "Reason": entry.reason,
        "LastUpdateTime": entry.last_update_time,
    }
    if attributes:
        destination["Attributes"] = attributes
    return {"SuppressedDestination": destination}


async def delete_suppressed_destination(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """DeleteSuppressedDestination."""
    address = checked_address(params.get("EmailAddress"))
    async with ctx.state.db.begin() as conn:
        deleted = await suppression_repo.delete(conn, address)
    if not deleted:
        raise NotFoundError(f"Email address {address} does not exist on your suppression list.")
    return {}


async def list_suppressed_destinations(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """ListSuppressedDestinations: newest first, filtered by Reasons and StartDate/EndDate, keyset-paged."""
    reasons = checked_reasons(params.get("Reasons") or [], "Reasons")
    start, end = params.get("StartDate"), params.get("EndDate")
    if start is not None and end is not None and start > end:
        raise BadRequestError("StartDate must not be later than EndDate")
    page_size = int(params.get("PageSize") or _PAGE_SIZE_MAX)
    if not 1 <= page_size <= _PAGE_SIZE_MAX:
        raise BadRequestError(f"PageSize {page_size} is out of range; use 1 to {_PAGE_SIZE_MAX}")
    after = None
    if params.get("NextToken"):
        try:
            after = suppression_repo.decode_page_token(params["NextToken"])
        except ValueError as err:
            raise InvalidNextTokenError(str(err)) from None
    async with ctx.state.db.connect() as conn:
        items, token = await suppression_repo.list_page(
            conn, reasons=reasons, start=start, end=end, page_size=page_size, after=after
        )
    response: dict[str, Any] = {
        "SuppressedDestinationSummaries": [
            {"EmailAddress": i.email_address, "Reason": i.reason, "LastUpdateTime": i.last_update_time}
            for i in items
        ]
    }
    if token is not None:
        response["NextToken"] = token
    return response


async def put_account_suppression_attributes(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """PutAccountSuppressionAttributes: which reasons suppress sending (an empty list turns suppression off)."""
    reasons = checked_reasons(params.get("SuppressedReasons") or [], "SuppressedReasons")
    if params.get("ValidationAttributes"):
        raise BadRequestError(
            "ValidationAttributes (SES Auto Validation) is not supported by sojourn; leave it out"
        )
    async with ctx.state.db.begin() as conn:
        await suppression_repo.set_enabled_reasons(conn, reasons)
    return {}


async def get_account(ctx: RequestContext, _params: dict[str, Any]) -> dict[str, Any]:
    """GetAccount: a self-hosted account in production mode, with its SuppressionAttributes."""
    async with ctx.state.db.connect() as conn:
        reasons = await suppression_repo.enabled_reasons(conn)
    return {
        "DedicatedIpAutoWarmupEnabled": False,
        "EnforcementStatus": "HEALTHY",
        "ProductionAccessEnabled": True,
        "SendingEnabled": True,
        "SuppressionAttributes": {"SuppressedReasons": reasons},
    }


HANDLERS: dict[str, Handler] = {
    "sesv2:PutSuppressedDestination": put_suppressed_destination,
    "sesv2:GetSuppressedDestination": get_suppressed_destination,
    "sesv2:DeleteSuppressedDestination": delete_suppressed_destination,
    "sesv2:ListSuppressedDestinations": list_suppressed_destinations,
    "sesv2:PutAccountSuppressionAttributes": put_account_suppression_attributes,
    "sesv2:GetAccount": get_account,
}

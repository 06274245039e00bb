"""Who a journey participant is: an endpoint on its own, or a user with all of its endpoints (Pinpoint §1.2).

When the endpoints that enter a journey carry ``User.UserId``, the participant is the user: every endpoint of
the user in the app enters with it, in the same cohort and lane and with the same entry number, and the
endpoints move through the journey together. Endpoints without a user id stay participants on their own.
These are the pure rules; the SQL that applies them lives in :mod:`sojourn.store.journey_ledger`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

Member = TypeVar("Member")
Zone = TypeVar("Zone")

USER_PREFIX = "u:"
ENDPOINT_PREFIX = "e:"


def participant_key(endpoint_id: str, user_id: str | None) -> str:
    """The participant an endpoint belongs to: ``u:<user id>`` for a user's endpoint, else ``e:<endpoint id>``.

    The prefixes keep a user id and an endpoint id that happen to be equal apart. Same as
    :data:`sojourn.store.journey_ledger.PARTICIPANT_KEY_SQL`.
    """
    return f"{USER_PREFIX}{user_id}" if user_id is not None else f"{ENDPOINT_PREFIX}{endpoint_id}"


def bucket_subject(endpoint_id: str, user_id: str | None) -> str:
    """What random splits and holdouts hash: the user id, so a user's endpoints never split apart.

    An endpoint participant hashes its endpoint id, as before users were participants.
    """
    return user_id if user_id is not None else endpoint_id


def whole_users(
    met: set[Member], users: Mapping[Member, str] | None, members: Iterable[Member]
) -> set[Member]:
    """Widen members who meet a condition to every member of their users (the OR across a user's endpoints).

    Args:
        met: The members (endpoint rows) that meet the condition on their own.
        users: The user id of each member that belongs to a user participant (others are absent).
        members: The members the condition was evaluated for.

    Returns:
        ``met`` plus every member whose user has a member in ``met``.
    """
    if not users or not met:
        return met
    met_users = {users[m] for m in met if m in users}
    if not met_users:
        return met
    return met | {m for m in members if users.get(m) in met_users}


def shared_zones(
    zones: Sequence[tuple[Member, str | None, Zone | None]],
) -> dict[Member, Zone | None]:
    """Each member's time zone, a user's endpoints all taking the user's zone, so the user keeps one clock.

    A user's zone is that of its first endpoint, in the order given, whose zone is known (the same rule that
    enters a user of a LocalTime journey on one clock); an endpoint participant keeps its own.

    Args:
        zones: (member, user id or None, the member's own zone or None), in a stable order (endpoint id).
    """
    of_user: dict[str, Zone] = {}
    for _, user_id, zone in zones:
        if user_id is not None and zone is not None:
            of_user.setdefault(user_id, zone)
    return {member: of_user.get(user_id) if user_id is not None else zone for member, user_id, zone in zones}

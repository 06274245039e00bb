"""A participant's time zone: ``Demographic.Timezone``, else an estimate (Pinpoint's TimezoneEstimationMethods).

Estimates are made only where they are honest:

- ``PHONE_NUMBER``: the number (the endpoint's SMS or VOICE address, read in ``Location.Country`` when it
  has no ``+`` prefix) is looked up in libphonenumber's time-zone data; a number whose prefix covers several
  zones (a mobile number in Australia or Brazil) gets no estimate.
- ``POSTAL_CODE``: with ``Location.PostalCode`` and ``Location.Country`` for countries that have one zone
  (GB, IE, FR, DE, IT, NZ), Spain (Canary Islands by their 35/38 postcodes) and Australia (the state by the
  postcode's first digit, with Broken Hill's 2880 on South Australian time). The US and Canada have zones that
  cut through postal areas; sojourn does not guess there.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import tzinfo

import phonenumbers
from phonenumbers import timezone as phone_timezones

from sojourn.domain.sending_window import zone_named

ESTIMATION_METHODS = ("PHONE_NUMBER", "POSTAL_CODE")
_PHONE_CHANNELS = ("SMS", "VOICE")

_SINGLE_ZONE_COUNTRIES = {
    "GB": "Europe/London",
    "UK": "Europe/London",
    "IE": "Europe/Dublin",
    "FR": "Europe/Paris",
    "DE": "Europe/Berlin",
    "IT": "Europe/Rome",
    "NZ": "Pacific/Auckland",
}
# Australian postcodes by first digit (0 is the Northern Territory except the ACT's 02xx).
_AU_BY_FIRST_DIGIT = {
    "2": "Australia/Sydney",
    "3": "Australia/Melbourne",
    "4": "Australia/Brisbane",
    "5": "Australia/Adelaide",
    "6": "Australia/Perth",
    "7": "Australia/Hobart",
}


def zone_from_phone(number: str, country: str | None) -> str | None:
    """The one IANA zone of a phone number, or None when it is unknown or ambiguous."""
    try:
        parsed = phonenumbers.parse(number, (country or "").upper() or None)
    except phonenumbers.NumberParseException:
        return None
    zones = [z for z in phone_timezones.time_zones_for_number(parsed) if z != "Etc/Unknown"]
    return zones[0] if len(zones) == 1 else None


def zone_from_postal_code(postal_code: str, country: str | None) -> str | None:
    """The IANA zone of a postal code where one can be told honestly (see the module docstring), else None."""
    code = postal_code.strip().upper()
    region = (country or "").strip().upper()
    if not code or not region:
        return None
    if region in _SINGLE_ZONE_COUNTRIES:
        return _SINGLE_ZONE_COUNTRIES[region]
    if region == "ES":
        return "Atlantic/Canary" if code[:2] in ("35", "38") else "Europe/Madrid"
    if region == "AU" and code.isdigit() and len(code) == 4:
        if code == "2880":
            return "Australia/Broken_Hill"
        if code.startswith("02"):
            return "Australia/Sydney"  # the ACT's 02xx; its 26xx and 29xx fall under "2" below
        if code.startswith("0"):
            return "Australia/Darwin"
        return _AU_BY_FIRST_DIGIT.get(code[0])
    return None


def participant_zone(
    *,
    timezone: str | None,
    channel_type: str | None,
    address: str | None,
    country: str | None,
    postal_code: str | None,
    methods: Iterable[str] = (),
) -> tzinfo | None:
    """The zone to read a participant's local time in, or None when it is unknown.

    Args:
        timezone: ``Demographic.Timezone``; it wins whenever it names a zone.
        channel_type: The endpoint's channel (phone estimates only for SMS and VOICE endpoints).
        address: The endpoint's address.
        country: ``Location.Country`` (ISO 3166-1 alpha-2).
        postal_code: ``Location.PostalCode``.
        methods: The journey's TimezoneEstimationMethods, tried in order.
    """
    known = zone_named(timezone)
    if known is not None:
        return known
    for method in methods:
        name: str | None = None
        if method == "PHONE_NUMBER" and address and channel_type in _PHONE_CHANNELS:
            name = zone_from_phone(address, country)
        elif method == "POSTAL_CODE" and postal_code:
            name = zone_from_postal_code(postal_code, country)
        estimated = zone_named(name)
        if estimated is not None:
            return estimated
    return None

"""Participant time zones: Demographic.Timezone first, then honest estimates from phone numbers and postcodes."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sojourn.domain.timezones import participant_zone, zone_from_phone, zone_from_postal_code


def test_demographic_timezone_wins() -> None:
    zone = participant_zone(
        timezone="Asia/Tokyo",
        channel_type="SMS",
        address="+14155550100",
        country="US",
        postal_code=None,
        methods=["PHONE_NUMBER"],
    )
    assert zone == ZoneInfo("Asia/Tokyo")


def test_phone_numbers_with_one_zone() -> None:
    assert zone_from_phone("+12125550100", None) == "America/New_York"
    assert zone_from_phone("0612345678", "FR") == "Europe/Paris"
    assert zone_from_phone("+61412345678", None) is None, "an Australian mobile spans zones"
    assert zone_from_phone("not a number", "US") is None


def test_phone_estimates_only_for_phone_channels_and_when_asked() -> None:
    common = {"timezone": None, "address": "+12125550100", "country": "US", "postal_code": None}
    assert participant_zone(channel_type="SMS", methods=["PHONE_NUMBER"], **common) == ZoneInfo(
        "America/New_York"
    )
    assert participant_zone(channel_type="EMAIL", methods=["PHONE_NUMBER"], **common) is None
    assert participant_zone(channel_type="SMS", methods=[], **common) is None


def test_postal_codes_where_they_tell_the_zone() -> None:
    assert zone_from_postal_code("75001", "FR") == "Europe/Paris"
    assert zone_from_postal_code("SW1A 1AA", "GB") == "Europe/London"
    assert zone_from_postal_code("35001", "ES") == "Atlantic/Canary"
    assert zone_from_postal_code("28001", "ES") == "Europe/Madrid"
    assert zone_from_postal_code("6000", "AU") == "Australia/Perth"
    assert zone_from_postal_code("2880", "AU") == "Australia/Broken_Hill"
    assert zone_from_postal_code("0800", "AU") == "Australia/Darwin"
    assert zone_from_postal_code("10001", "US") is None, "US zones cut through postal areas"
    zone = participant_zone(
        timezone="Not/AZone",
        channel_type="EMAIL",
        address="a@b.c",
        country="DE",
        postal_code="10115",
        methods=["PHONE_NUMBER", "POSTAL_CODE"],
    )
    assert zone == ZoneInfo("Europe/Berlin")

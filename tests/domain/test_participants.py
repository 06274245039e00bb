"""The rules of user-level journey participants (Pinpoint §1.2)."""

from __future__ import annotations

from sojourn.domain.participants import bucket_subject, participant_key, shared_zones, whole_users


def test_participant_key_tells_users_from_endpoints() -> None:
    assert participant_key("ep1", None) == "e:ep1"
    assert participant_key("ep1", "u1") == "u:u1"
    assert participant_key("ep2", "u1") == participant_key("ep1", "u1")
    # An endpoint whose id is some user's id is not that user.
    assert participant_key("u1", None) != participant_key("ep1", "u1")


def test_bucket_subject_is_the_user_else_the_endpoint() -> None:
    assert bucket_subject("ep1", "u1") == bucket_subject("ep2", "u1") == "u1"
    assert bucket_subject("ep1", None) == "ep1"


def test_whole_users_brings_every_endpoint_of_a_matching_user() -> None:
    members = [("a1", 1), ("a2", 1), ("b1", 1), ("b2", 1), ("solo", 1)]
    users = {("a1", 1): "A", ("a2", 1): "A", ("b1", 1): "B", ("b2", 1): "B"}
    assert whole_users({("a2", 1)}, users, members) == {("a1", 1), ("a2", 1)}
    assert whole_users({("solo", 1)}, users, members) == {("solo", 1)}
    assert whole_users({("b1", 1), ("solo", 1)}, users, members) == {("b1", 1), ("b2", 1), ("solo", 1)}
    assert whole_users(set(), users, members) == set()


def test_whole_users_without_users_changes_nothing() -> None:
    met = {("x", 1)}
    assert whole_users(met, None, [("x", 1), ("y", 1)]) is met
    assert whole_users(met, {}, [("x", 1), ("y", 1)]) is met


def test_whole_users_only_widens_within_the_members_evaluated() -> None:
    # The user's other endpoint is not among the members (it already went down an earlier branch).
    users = {("a1", 1): "A", ("a2", 1): "A"}
    assert whole_users({("a1", 1)}, users, [("a1", 1)]) == {("a1", 1)}


def test_shared_zones_give_a_user_the_zone_of_its_first_endpoint_with_one() -> None:
    zones = shared_zones(
        [
            ("a1", "ann", None),
            ("a2", "ann", "Europe/Paris"),
            ("a3", "ann", "Asia/Tokyo"),
            ("b1", "bob", None),
            ("s1", None, "Etc/UTC"),
            ("s2", None, None),
        ]
    )
    assert zones == {
        "a1": "Europe/Paris",
        "a2": "Europe/Paris",
        "a3": "Europe/Paris",
        "b1": None,
        "s1": "Etc/UTC",
        "s2": None,
    }

import pytest

from reconciler import ownership


def test_instance_names_round_trip() -> None:
    name = ownership.instance_name("web", "bcdfg", 12)
    assert name == "web-bcdfg-12"
    assert ownership.parse_instance_name(name) == ("web", "bcdfg", 12)


def test_pool_names_with_dashes_parse_from_the_right() -> None:
    assert ownership.parse_instance_name("gpu-big-x2z9b-0") == ("gpu-big", "x2z9b", 0)


@pytest.mark.parametrize(
    "name",
    [
        "web-1",  # no hash
        "web-bcdfg-01",  # leading zero: not a name we make, so not ours
        "web-bcdfa-1",  # vowel: not in the hash alphabet
        "web-bcdf-1",  # short hash
        "Web-bcdfg-1",  # upper case pool
        "nomad-server-1",
        "primary",
    ],
)
def test_foreign_names_are_not_ours(name: str) -> None:
    assert ownership.parse_instance_name(name) is None


def test_encoded_hash_is_a_valid_name_part() -> None:
    import hashlib

    h = ownership.encode_hash(hashlib.sha256(b"x").digest())
    assert len(h) == ownership.HASH_LENGTH
    assert ownership.parse_instance_name(f"p-{h}-0") == ("p", h, 0)

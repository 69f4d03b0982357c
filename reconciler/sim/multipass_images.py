"""The simulated daemon's image catalogue: what it can launch, and what `find` lists.

As multipassd: a launch names an image by alias (``24.04``, ``noble``, ``lts``) on a
remote (the request's ``remote_name``; empty means the release remote), or by a
``file://`` / ``http(s)://`` URL, which the daemon does not check before fetching.
An alias no remote has is refused before anything is created
(``daemon.cpp: validate_image``, FAILED_PRECONDITION).
"""

from __future__ import annotations

from dataclasses import dataclass

GiB = 1024**3

RELEASE_REMOTE = "release"
DAILY_REMOTE = "daily"


@dataclass(frozen=True)
class SimImage:
    remote: str
    release: str  # the release title `info` reports as image_release
    version: str
    codename: str
    aliases: tuple[str, ...]
    # Aliases that resolve but that `find` does not show ("default").
    hidden_aliases: tuple[str, ...] = ()
    os: str = "Ubuntu"
    min_disk: int = 3 * GiB + GiB // 2  # below this the daemon refuses the requested disk
    footprint: int = GiB  # what a fresh instance's disk file takes on the host


# Ubuntu releases a daemon offers in 2026-08 (supported ones; find hides the others).
DEFAULT_CATALOGUE: tuple[SimImage, ...] = (
    SimImage(RELEASE_REMOTE, "22.04 LTS", "20260801", "jammy", ("22.04", "jammy")),
    SimImage(RELEASE_REMOTE, "24.04 LTS", "20260801", "noble", ("24.04", "noble")),
    SimImage(RELEASE_REMOTE, "25.10", "20260801", "questing", ("25.10", "questing")),
    SimImage(
        RELEASE_REMOTE,
        "26.04 LTS",
        "20260801",
        "resolute",
        ("26.04", "resolute", "lts"),
        hidden_aliases=("default",),
    ),
    SimImage(DAILY_REMOTE, "26.10", "20260815", "devel", ("26.10", "devel")),
)


def image_not_found_message(image: str, remote: str) -> str:
    """The daemon's ImageNotFoundException text (include/.../image_vault_exceptions.h)."""
    return f'Unable to find an image matching "{image}" in remote "{remote}".'


def is_url(image: str) -> bool:
    """Images the daemon fetches without looking them up (daemon.cpp: query_from)."""
    return image.startswith(("file", "http"))


class Catalogue:
    def __init__(self, images: tuple[SimImage, ...] = DEFAULT_CATALOGUE) -> None:
        self.images = images

    def resolve(self, image: str, remote: str) -> SimImage | None:
        """The image an alias names on ``remote`` (empty: the release remote), or None."""
        alias = image or "default"
        where = remote or RELEASE_REMOTE
        for entry in self.images:
            if entry.remote == where and alias in (*entry.aliases, *entry.hidden_aliases):
                return entry
        return None

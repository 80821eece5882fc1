"""Which repositories an organization's runner group serves (GitHub's visibility rules).

GitHub never hands a job to a runner whose group does not serve the job's repository: a VM
started for such a job idles until its deadline. A group's ``visibility`` is ``all``,
``selected`` (a list of repositories) or ``private`` (private and internal repositories only);
``allows_public_repositories`` false (the Default group's default) excludes public ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping


@dataclasses.dataclass(frozen=True, kw_only=True)
class GroupAccess:
    """A runner group's access rules as GitHub reports them."""

    name: str
    visibility: str  # all | selected | private
    allows_public_repositories: bool
    selected_repositories: frozenset[str] | None = None  # lower-cased owner/name


def refusal(group: GroupAccess, *, repository: str, private: bool | None) -> str | None:
    """Why ``group`` does not serve ``repository``, or None when it does (or may).

    ``private`` is None when the repository's visibility is unknown: then only a ``selected``
    list can refuse it.
    """
    repo = repository.lower()
    selected = group.selected_repositories or frozenset()
    if group.visibility == "selected" and repo not in selected:
        return (
            f"runner group '{group.name}' serves selected repositories only and {repository} "
            "is not one of them: add it to the group (organization settings > Actions > "
            "Runner groups) or use another github.runner_group"
        )
    if private is False:
        if group.visibility == "private":
            return (
                f"runner group '{group.name}' serves private repositories only and {repository} "
                "is public: change the group's repository access"
            )
        if not group.allows_public_repositories:
            return (
                f"runner group '{group.name}' does not allow public repositories and {repository} "
                "is public: enable 'Allow public repositories' on the group"
            )
    return None


def unserved(
    group: GroupAccess, *, repositories: Iterable[str], private: Mapping[str, bool]
) -> dict[str, str]:
    """Lower-cased repository -> why the group does not serve it, for every one it refuses."""
    lowered = {name.lower(): value for name, value in private.items()}
    found: dict[str, str] = {}
    for repository in repositories:
        why = refusal(group, repository=repository, private=lowered.get(repository.lower()))
        if why is not None:
            found[repository.lower()] = why
    return found

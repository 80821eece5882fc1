"""Repositories and organization runner groups of the simulated GitHub.

A mixin of ``state.SimState``: repositories have ids, a private flag, and can be renamed or
transferred (the old name then redirects), removed (404) or forbidden (403); runner groups
serve all, selected or private repositories (``objects.SimGroup.serves``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from blacksmith_mini.simulator.objects import Conflict, Missing, SimGroup, SimRepository


class RepositoryRules:
    repos: dict[int, SimRepository]
    former_names: dict[str, int]
    groups: dict[int, SimGroup]
    jobs: dict[int, Any]
    runs: dict[int, Any]
    runners: dict[int, Any]

    def save(self) -> None:
        raise NotImplementedError

    @property
    def repositories(self) -> list[str]:
        """Full names (lower case) of the repositories that exist."""
        return [repo.full_name for repo in self.repos.values() if not repo.removed]

    # --- repositories and runner groups ----------------------------------------------------

    def add_repository(self, name: str, *, private: bool = True) -> SimRepository:
        repo = SimRepository(id=100_000 + len(self.repos) + 1, full_name=name.lower())
        repo.private = private
        self.repos[repo.id] = repo
        return repo

    def repository(self, name: str) -> SimRepository | None:
        """The existing repository called ``name`` now (not a former name)."""
        name = name.lower()
        return next((r for r in self.repos.values() if r.full_name == name and not r.removed), None)

    def moved(self, name: str) -> SimRepository | None:
        """The repository once called ``name``, if it was renamed or transferred."""
        repo = self.repos.get(self.former_names.get(name.lower(), 0))
        return repo if repo is not None and not repo.removed else None

    def _named(self, name: str) -> SimRepository:
        repo = self.repository(name)
        if repo is None:
            raise Missing(f"repository {name} is not simulated")
        return repo

    def rename_repository(self, old: str, new: str) -> SimRepository:
        """Rename or transfer (``owner/name`` -> ``other/name``): old paths answer 301."""
        repo, old, new = self._named(old), old.lower(), new.lower()
        if self.repository(new) is not None:
            raise Conflict(f"repository {new} exists already")
        repo.full_name = new
        self.former_names[old] = repo.id
        self.former_names.pop(new, None)
        for item in [*self.jobs.values(), *self.runs.values()]:
            if item.repository == old:
                item.repository = new
        for runner in self.runners.values():
            if runner.scope == old:
                runner.scope = new
        self.save()
        return repo

    def update_repository(
        self,
        name: str,
        *,
        private: bool | None = None,
        forbidden: bool | None = None,
        removed: bool | None = None,
    ) -> SimRepository:
        found = self.repository(name) or self.repos.get(self.former_names.get(name.lower(), 0))
        found = found or next((r for r in self.repos.values() if r.full_name == name.lower()), None)
        if found is None:
            raise Missing(f"repository {name} is not simulated")
        for field, value in (("private", private), ("forbidden", forbidden), ("removed", removed)):
            if value is not None:
                setattr(found, field, value)
        self.save()
        return found

    def add_group(
        self,
        name: str,
        *,
        visibility: str = "all",
        allows_public_repositories: bool = False,
        repositories: Iterable[str] = (),
    ) -> SimGroup:
        if visibility not in ("all", "selected", "private"):
            raise ValueError(f"visibility must be all, selected or private, not {visibility!r}")
        ids = [self._named(repo).id for repo in repositories]
        group = SimGroup(
            id=max(self.groups) + 1,
            name=name,
            visibility=visibility,
            allows_public_repositories=allows_public_repositories,
            repository_ids=ids,
        )
        self.groups[group.id] = group
        self.save()
        return group

    def update_group(
        self,
        group_id: int,
        *,
        visibility: str | None = None,
        allows_public_repositories: bool | None = None,
        repositories: Iterable[str] | None = None,
    ) -> SimGroup:
        group = self.groups.get(group_id)
        if group is None:
            raise Missing(f"Runner group {group_id} not found")
        if visibility is not None:
            if visibility not in ("all", "selected", "private"):
                raise ValueError(f"visibility must be all, selected or private: {visibility!r}")
            group.visibility = visibility
        if allows_public_repositories is not None:
            group.allows_public_repositories = bool(allows_public_repositories)
        if repositories is not None:
            group.repository_ids = [self._named(str(repo)).id for repo in repositories]
        self.save()
        return group

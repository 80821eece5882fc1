"""Label matching between jobs and pools. GitHub matches case-insensitively; so do we."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from blacksmith_mini.domain import model


def normalize(labels: Iterable[str]) -> frozenset[str]:
    """Lower-case and strip labels, dropping empty ones."""
    return frozenset(label.strip().lower() for label in labels if label.strip())


Match = model.Match


def match(job_labels: Sequence[str], pools: Sequence[model.Pool]) -> Match:
    """Pick the pool whose runners carry every label of the job.

    A runner takes a job when it has all of the job's ``runs-on`` labels, so a pool matches when
    the job's labels are a subset of the pool's. Among matches the smallest pool (fewest labels,
    then fewest vCPUs) wins so a plain job does not take a large VM. A job with no labels is
    served by no one, as on GitHub.
    """
    wanted = normalize(job_labels)
    if not wanted:
        return Match(pool=None, unmatched_reason="the job has no runs-on labels")
    candidates = [pool for pool in pools if wanted <= pool.labels]
    if candidates:
        best = min(candidates, key=lambda p: (len(p.labels), p.vcpus, p.memory_mib, p.name))
        return Match(pool=best)
    if not pools:
        return Match(pool=None, unmatched_reason="no pools are configured")
    closest = min(pools, key=lambda p: (len(wanted - p.labels), p.name))
    missing = ", ".join(sorted(wanted - closest.labels))
    return Match(
        pool=None,
        unmatched_reason=(
            f"no pool has all of its labels; closest pool '{closest.name}' lacks: {missing}"
        ),
    )

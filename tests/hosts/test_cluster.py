"""The multi-host fault suite: two replicas on PostgreSQL, three agents in their own network
namespaces, the simulated GitHub; one fault per scenario with jobs running (see
``cluster_scenarios``). Each must end with every job succeeded (re-run once if our host
failed it), none run twice, nothing leaked, every host up. Needs root (network namespaces)
and ``BLACKSMITH_TEST_DATABASE_URL`` (``.ci/run`` sets both up).
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import pytest

from hosts import cluster_scenarios
from hosts.cluster import Cluster

PG_URL = os.environ.get("BLACKSMITH_TEST_DATABASE_URL")
pytestmark = [
    pytest.mark.skipif(not PG_URL, reason="needs BLACKSMITH_TEST_DATABASE_URL (.ci/run sets it)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    assert PG_URL is not None
    found = Cluster(pathlib.Path(tmp_path_factory.mktemp("cluster")), database_url=PG_URL)
    try:
        yield found.start()
    finally:
        found.stop()


@pytest.mark.parametrize("name", list(cluster_scenarios.SCENARIOS))
def test_scenario(cluster: Cluster, name: str) -> None:
    outcome = cluster_scenarios.SCENARIOS[name](cluster)
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    assert outcome.problems() == [], (outcome, [r.log for r in cluster.replicas])

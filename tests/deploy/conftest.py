"""The real deployment, shared by every test that needs one.

`deployment` runs `ansible-playbook deploy.yml -e scale=small -e clean=true` once per
session against the Docker engine of this machine (inventories/local) and hands out the
run and the endpoints. Tests that change or remove the shared deployment carry
`@pytest.mark.mutates_deployment(order)` and run after every other test, in that order.
"""

from __future__ import annotations

import pytest
from deploy_helpers import SCALE, Deployment, run_playbook


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mutates_deployment(order): changes the shared deployment; runs after every other "
        "test, by increasing order",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def order(item: pytest.Item) -> int:
        marker = item.get_closest_marker("mutates_deployment")
        return marker.args[0] if marker else -1

    items.sort(key=order)


@pytest.fixture(scope="session")
def deployment() -> Deployment:
    """scale=small deployed from a clean slate by the real deploy.yml; fails if it fails."""
    run = run_playbook("deploy.yml", "-e", f"scale={SCALE}", "-e", "clean=true")
    assert run.returncode == 0 and run.failed == 0, run.explain()
    return Deployment(scale=SCALE, first_run=run)

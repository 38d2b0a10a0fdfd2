"""The verify play's proof key is bound to the control API: the play collects it at both
ends, so that neither store keeps a key nobody will come for."""

from __future__ import annotations

import re

import httpx
from deploy_helpers import Deployment


def test_the_verify_play_leaves_its_key_in_neither_store(deployment: Deployment) -> None:
    shown = re.search(r"key_ID ([0-9a-f-]{36})", deployment.first_run.output)
    assert shown, "the verify play showed no key_ID"
    auth = {"Authorization": f"Bearer {deployment.api_token}"}
    with httpx.Client(timeout=10, headers=auth) as client:
        for url in (deployment.alice_url, deployment.bob_url):
            response = client.get(f"{url}/keys/{shown.group(1)}")
            assert response.status_code == 404, (url, response.status_code)

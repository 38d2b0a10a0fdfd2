"""schemathesis against both APIs' own OpenAPI documents, on a real `cqkd local --serve`:
valid and invalid requests, a bounded number per operation, and not one server error,
undocumented status, wrong content type or response outside its schema."""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from helpers.processes import Processes
from helpers.tls import client_context
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.network

EXAMPLES = 25  # per operation and generation mode
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# A request the schema calls valid is accepted: the document states the rules the server
# enforces. Not for dec_keys, where ETSI GS QKD 014 answers 400 to well-formed but unknown
# key_IDs (and any generated key_ID is unknown); nor for bodies with lone surrogates in
# strings, which I-JSON (RFC 7493 2.1) forbids and the server's JSON parser refuses (400).
ACCEPTANCE = [positive_data_acceptance]


def is_i_json(body: Any) -> bool:
    if not isinstance(body, dict | list):
        return True
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Small keys and requests, so that the sessions behind positive examples stay quick."""
    procs = Processes(tmp_path_factory.mktemp("schemathesis"))
    process = procs.start(
        "local",
        ["local", "--serve", "--api-ports", "any", "--workers", "8", "--json",
         "--max-key-bits", "256", "--etsi-max-keys-per-request", "4"],
        {},
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        yield json.loads(process.stdout.readline())
    finally:
        procs.kill_all()


def fuzz(url: str, document: dict[str, Any], path_parameters: dict[str, str], **call: Any) -> int:
    """Run every operation of `document` against `url`; return the number of requests."""
    schema = schemathesis.openapi.from_dict(document)
    requests = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        names = {p.name for p in operation.path_parameters}
        fixed = {name: value for name, value in path_parameters.items() if name in names}
        accepts = not operation.path.endswith("/dec_keys")
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(mode, path_parameters=fixed or None))
            def check(case: Any) -> None:
                nonlocal requests
                response = case.call(base_url=url, timeout=60, **call)
                requests += 1
                acceptance = ACCEPTANCE if accepts and is_i_json(case.body) else []  # noqa: B023
                case.validate_response(response, checks=CHECKS + acceptance)

            try:
                check()
            except Unsatisfiable:
                # No invalid request exists for an operation without parameters or body.
                assert mode is GenerationMode.NEGATIVE, operation.label
    return requests


def test_control_apis_conform(served: dict[str, Any]) -> None:
    token = Path(served["token_file"]).read_text().strip()
    for side in ("alice", "bob"):
        url = served[f"{side}_control"]
        document = httpx.get(url + "/openapi.json", timeout=30).json()
        assert fuzz(url, document, {}, headers={"Authorization": f"Bearer {token}"}) > 0


def test_etsi_apis_conform(served: dict[str, Any]) -> None:
    master, slave = served["master_sae"], served["slave_sae"]
    for side, sae, path in (
        ("alice", master, {"slave_SAE_ID": slave["id"]}),
        ("bob", slave, {"master_SAE_ID": master["id"]}),
    ):
        url = served[f"{side}_etsi"]
        context = client_context(served["ca"], sae["cert"], sae["key"])
        document = httpx.get(url + "/openapi.json", verify=context, timeout=30).json()
        tls = {"verify": served["ca"], "cert": (sae["cert"], sae["key"])}
        assert fuzz(url, document, path, **tls) > 0

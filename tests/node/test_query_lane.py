"""POST /data/query takes the lane (node/api/lane.py), and the lane answers exactly as the full stack would.

The node's app is built in process on a real chain; each request of the table is sent once through the
app (the lane) and once, freshly signed, straight into the middleware stack the lane stands in front of
(routing, the route's wrappers, the exception middleware), and the two answers must match: status,
body, and the headers every answer carries.
"""
from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from nodes import TEST_PASSPHRASE, deploy_members

from node.access.auth import sign_request
from node.chain.deployment import Purpose, Role
from node.chain.gateway import ChainGateway
from node.chain.ledger import Ledger, dataset_id
from node.runtime.settings import NodeSettings

CLAIMS = [("c1", "p1", 1200.5, "paid", "east"), ("c2", "p2", 300.0, "open", "west"), ("c3", "p3", 90.25, "paid", "east")]


@pytest.fixture(scope="module")
def app_and_keys(anvil, artifacts, tmp_path_factory):
    from node.api.app import create_app
    from node.keys import load_member_keys
    from node.runtime.context import NodeContext

    base = tmp_path_factory.mktemp("lane")
    gateway = ChainGateway.connect(anvil.url, artifacts)
    keys, _, dep_path = deploy_members(gateway, base, {"owner": Role.INSURER, "platform": Role.PLATFORM})
    settings = NodeSettings(name="owner", home=base / "home", keys=base / "keys" / "owner", rpc_url=anvil.url,
                            deployment=dep_path, release_min_cohort=1, max_body_bytes=2000)
    ctx = NodeContext.build(settings, load_member_keys(settings.keys, TEST_PASSPHRASE), TEST_PASSPHRASE)
    csv = base / "claims.csv"
    csv.write_text("claim_id,person_id,policy_id,amount,claim_date,status,age_band,region\n" +
                   "".join(f"{c},{p},pol-{c},{a},2026-01-05,{s},30-39,{r}\n" for c, p, a, s, r in CLAIMS))
    from node.store.datasets import import_csv

    import_csv(ctx.engine, "claims", csv)
    now = gateway.w3.eth.get_block("latest")["timestamp"]
    Ledger(gateway, keys["owner"].account).grant(keys["platform"].address, dataset_id("claims"), Purpose.STATISTICS,
                                                 expires_at=now + 86400)
    app = create_app(ctx)
    yield app, keys, gateway.chain_id
    ctx.engine.dispose()


def _signed(keys, chain_id, who, body: bytes, *, tamper: bool = False) -> dict:
    headers = sign_request(keys[who].account, chain_id, keys["owner"].address, "POST", "/data/query", body)
    if tamper:
        headers = {**headers, "x-consortium-nonce": "00" * 32}
    return {**headers, "content-type": "application/json"}


def _body(**fields) -> bytes:
    return json.dumps({"dataset": "claims", "purpose": "STATISTICS", **fields}).encode()


CASES = {  # name -> (signer or None, body, tamper)
    "served": ("platform", _body(), False),
    "served_grouped": ("platform", _body(metric="sum", column="amount", group_by="region"), False),
    "unsigned": (None, _body(), False),
    "forged": ("platform", _body(), True),
    "not_json": ("platform", b"{not json", False),
    "extra_field": ("platform", _body(sneaky=1), False),
    "unknown_dataset": ("platform", _body(dataset="payroll"), False),
    "bad_column": ("platform", _body(metric="sum", column="person_id"), False),
    "wrong_purpose": ("platform", _body(purpose="CLAIMS"), False),
    "no_grant": ("owner", _body(purpose="FRAUD"), False),
    "too_large": ("platform", _body(filters={"status": "x" * 3000}), False),
}


def _stack_only(app):
    """The app without the lane: the middleware stack the lane stands in front of."""
    stack = app.build_middleware_stack().stack

    async def asgi(scope, receive, send):
        scope["app"] = app
        await stack(scope, receive, send)
    return asgi


@pytest.mark.parametrize("case", list(CASES))
def test_the_lane_answers_as_the_full_stack_does(app_and_keys, case):
    app, keys, chain_id = app_and_keys
    signer, body, tamper = CASES[case]
    answers = []
    for target in (app, _stack_only(app)):
        headers = _signed(keys, chain_id, signer, body, tamper=tamper) if signer else {"content-type": "application/json"}
        with TestClient(target, raise_server_exceptions=False) as client:
            before = app.lane_served
            r = client.post("/data/query", content=body, headers=headers)
            answers.append((r.status_code, r.json(), r.headers.get("x-content-type-options"),
                            r.headers.get("referrer-policy"), app.lane_served - before))
    (lane_status, lane_body, *lane_headers, lane_count), (stack_status, stack_body, *stack_headers, stack_count) = answers
    assert (lane_count, stack_count) == (1, 0)  # the first went through the lane, the second did not
    assert lane_status == stack_status and lane_status < 500, (lane_status, lane_body)
    assert lane_body == stack_body
    assert lane_headers == stack_headers == ["nosniff", "no-referrer"]
    assert (lane_status == 200) == case.startswith("served")


def test_other_methods_and_paths_take_the_full_stack(app_and_keys):
    app, _, _ = app_and_keys
    with TestClient(app, raise_server_exceptions=False) as client:
        before = app.lane_served
        assert client.get("/data/query").status_code == 405
        assert client.get("/health").status_code == 200
        assert "/data/query" in client.get("/openapi.json").json()["paths"]  # still documented
        assert app.lane_served == before

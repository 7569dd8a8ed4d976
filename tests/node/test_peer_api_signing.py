"""A live node signs the honest report, never a second result for the same key, and reports its
view: POST /v1/reports/batch (protocol step 4) on the peer port; GET /v1/status, /healthz, /metrics
on the admin listener only (node interfaces).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio

from keeper.core.messages import decode_batch_response, encode_batch
from keeper.core.report import Report, recover_batch_signer
from tests.node.peer_api_support import (
    INTERVAL,
    STRANGER,
    World,
    expect_refused,
    given_an_honest_request,
    leaders_in_order,
    make_due,
    metric,
    mine_to_turn,
    open_world,
    post_raw,
    post_request,
    request_for,
    signed_headers,
    snapshot,
    store_an_earlier_result,
    the_report,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with open_world(tmp_path_factory.mktemp("peer-api-signing")) as built:
        yield built


async def signed_reports(world: World, node: int, report: Report) -> list[Report]:
    store = world.node(node).store
    key = report.equivocation_key
    return [s.report for s in await store.signed_for(*key)]


# ---------------------------------------------------------------------------- signing


async def test_given_the_honest_request_then_the_member_signs_and_stores_it(
    world: World,
) -> None:
    leader, receiver, req = await given_an_honest_request(world)
    node = world.node(receiver)
    before = await snapshot(world, receiver)
    signed_before = await metric(world, receiver, "keeper_reports_signed_total")

    # when the leader posts it over HTTP
    status, answer = await post_request(world, receiver, req, leader)

    # then the answer is the member's EIP-712 signature of exactly that batch
    assert status == 200
    response = decode_batch_response(json.dumps(answer).encode(), 1)
    assert response.signer == node.address
    assert not response.overloaded
    assert response.results == (True,) and response.signature is not None
    assert recover_batch_signer(req.batch, world.network.net.domain, response.signature) == (
        node.address
    )
    # and it was stored before it left the node
    after = await snapshot(world, receiver)
    assert after.signature_count == before.signature_count + 1
    assert after.round_counts == before.round_counts
    assert await signed_reports(world, receiver, the_report(req)) == [the_report(req)]
    assert await metric(world, receiver, "keeper_reports_signed_total") == signed_before + 1


async def test_given_a_signed_result_then_another_cursor_is_refused_but_a_view_change_is_signed(
    world: World,
) -> None:
    leader, receiver, req = await given_an_honest_request(world)
    assert (await post_request(world, receiver, req, leader))[0] == 200

    # when the same leader asks again for the same (job, round, checkBlock, checkBlockHash)
    # with another cursor
    other = replace(the_report(req), cursor=the_report(req).cursor - INTERVAL)
    body = encode_batch(request_for(world, leader, other))
    status, code = await expect_refused(world, receiver, body, signed_headers(body, leader))

    # then the node refuses (it derives the cursor itself, so the equivocation never reaches
    # its signature store) and signed nothing new
    assert (status, code) == (422, "CursorMismatch")
    assert await signed_reports(world, receiver, the_report(req)) == [the_report(req)]

    # when the same result comes again with a later deadline, and from a backup leader in its
    # turn (members refuse a backup before it)
    later = replace(the_report(req), deadline=the_report(req).deadline + 1)
    backup = world.key((await leaders_in_order(world))[2])
    await mine_to_turn(world, 2)
    by_backup = replace(the_report(req), executor=backup.address)
    status_later, _ = await post_request(world, receiver, request_for(world, leader, later), leader)
    status_backup, _ = await post_request(
        world, receiver, request_for(world, backup, by_backup), backup
    )

    # then both are signed: the same result may be signed for any executor and deadline
    assert (status_later, status_backup) == (200, 200)
    stored = await signed_reports(world, receiver, the_report(req))
    assert sorted(stored, key=repr) == sorted([the_report(req), later, by_backup], key=repr)
    assert {(r.cursor, r.payloadHash) for r in stored} == {
        (the_report(req).cursor, the_report(req).payloadHash)
    }


async def test_given_the_node_signed_another_result_for_the_key_then_409_conflict(
    world: World,
) -> None:
    leader, receiver, req = await given_an_honest_request(world)
    # given the node's signature store already holds a different result for this key (as an
    # earlier run of the node, with another view of the job, would have left it)
    earlier = await store_an_earlier_result(world, receiver, the_report(req))

    # when the leader asks it to sign the result it derives now
    body = encode_batch(req)
    status, code = await expect_refused(world, receiver, body, signed_headers(body, leader))

    # then it refuses: signing would be equivocation, restarts included
    assert (status, code) == (409, "Conflict")
    assert await signed_reports(world, receiver, the_report(req)) == [earlier]


# ---------------------------------------------------------------------------- metrics


async def test_the_rejections_caused_are_counted_by_code_in_metrics(world: World) -> None:
    _, receiver, req = await given_an_honest_request(world)
    series = ("keeper_peer_rejections_total", 'code="NotMember"')
    before = await metric(world, receiver, *series)

    # when a keeper of the other quorum and an unregistered key each ask for a signature
    outsider = world.key(world.outsiders[0])
    for sender in (outsider, STRANGER):
        report = replace(the_report(req), executor=sender.address)
        body = encode_batch(request_for(world, sender, report))
        assert await expect_refused(world, receiver, body, signed_headers(body, sender)) == (
            403,
            "NotMember",
        )

    # then /metrics counts exactly those two NotMember rejections
    async with world.http.get(world.node(receiver).admin_endpoint + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    assert "keeper_reports_signed_total" in text
    assert await metric(world, receiver, *series) == before + 2


# ---------------------------------------------------------------------------- status, health


async def test_status_shows_the_nodes_view_with_the_time_job(world: World) -> None:
    await make_due(world)
    member, outsider = world.members[1], world.outsiders[0]

    status = await _get_json(world, member, "/v1/status")
    other = await _get_json(world, outsider, "/v1/status")

    net = world.network.net
    head = await world.node(member).store.head()
    assert head is not None
    assert status["address"] == world.node(member).address
    assert status["head"] == head[0] == await net.block_number()
    assert status["epoch"] == await net.epoch() == 1
    assert status["quorum_count"] == 2
    (job,) = [j for j in status["jobs"] if j["id"] == world.job_id]
    assert job["kind"] == "Time"
    assert job["status"] == "Active"
    assert job["round"] == (await net.job(world.job_id))["round"]
    assert job["mine"] is True
    assert status["my_quorums"] == [job["quorum"]]
    (seen_by_other,) = [j for j in other["jobs"] if j["id"] == world.job_id]
    assert seen_by_other["mine"] is False
    assert other["my_quorums"] != status["my_quorums"]
    assert set(status["load"]) >= {"cpu_percent", "memory_percent", "overloaded"}
    assert status["load"]["overloaded"] is False
    assert status["signatures"] == await world.node(member).store.signature_count()


async def test_healthz_is_200_while_the_node_syncs_normally(world: World) -> None:
    # given the network running normally for a block
    await world.network.step()

    # when a node's health is read
    for i in (world.members[0], world.outsiders[0]):
        async with world.http.get(world.node(i).admin_endpoint + "/healthz") as resp:
            body = await resp.json()
            # then it is healthy
            assert resp.status == 200, body
            assert body["ok"] is True


async def test_unknown_paths_are_404_and_the_api_is_on_loopback_only(world: World) -> None:
    node = world.node(world.members[0])
    assert node.endpoint.startswith("http://127.0.0.1:")
    registered = await world.network.net.registry.functions.endpointOf(node.address).call()
    assert registered == node.endpoint

    async with world.http.get(node.endpoint + "/v1/nothing") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"] == "NotFound"
    async with world.http.get(node.endpoint + "/v1/reports/batch") as resp:
        assert resp.status == 405
    async with world.http.post(node.endpoint + "/v1/reports", data=b"{}") as resp:
        assert resp.status == 404  # the single-report route is gone: a batch of one it is
    status, answer = await post_raw(world, world.members[0], b"{}", {})
    assert (status, answer["error"]) == (415, "UnsupportedMediaType")


async def test_the_peer_port_shows_nothing_and_the_admin_listener_is_on_loopback(
    world: World,
) -> None:
    node = world.node(world.members[0])
    # given a node whose peer API and admin listener are on two ports
    assert node.admin_endpoint.startswith("http://127.0.0.1:")
    assert node.admin_port not in (0, node.port)
    for path in ("/v1/status", "/healthz", "/metrics"):
        # when anyone asks the peer port for the node's view, then there is none there
        async with world.http.get(node.endpoint + path) as resp:
            assert (resp.status, (await resp.json())["error"]) == (404, "NotFound"), path
        # and the admin listener answers it (health may be 503: these nodes do not tick)
        async with world.http.get(node.admin_endpoint + path) as resp:
            assert resp.status in ((200, 503) if path == "/healthz" else (200,)), path
    # and the admin listener takes no peer requests
    async with world.http.post(node.admin_endpoint + "/v1/reports/batch", data=b"{}") as resp:
        assert resp.status == 404


async def _get_json(world: World, node: int, path: str) -> dict[str, Any]:
    async with world.http.get(world.node(node).admin_endpoint + path) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        body = await resp.json()
    assert isinstance(body, dict)
    return body

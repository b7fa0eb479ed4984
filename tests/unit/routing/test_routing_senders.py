"""Sink senders (sinks/senders.py) against httpx's mock transport: the webhook's body,
signature and idempotency key; Mautic's calls, fields and Basic auth; failures named without
personal data."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from leadflow_routing.domain.config import MauticSink, WebhookSink
from leadflow_routing.domain.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign, verify
from leadflow_routing.sinks.secrets import SecretMissing, SecretStore
from leadflow_routing.sinks.senders import SendFailed, mautic_contact, send_mautic, send_webhook

BODY = json.dumps(
    {
        "leadId": "lead-1",
        "brandId": "stacksense",
        "owner": {"brandId": "stacksense", "ownerId": "tom"},
        "lead": {
            "traits": {
                "email": "ada@example.com",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "company": "Engines",
                "industry": "computing",
                "phone": "",
            }
        },
    }
).encode()


@pytest.fixture
def secrets(tmp_path: Path) -> SecretStore:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"hook": "s3cret", "mautic": "api:pw"}))
    return SecretStore(str(path))


def client(handler) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_webhook_posts_the_exact_body_signed_with_the_idempotency_key(secrets):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    sink = WebhookSink(url="https://crm.example/hook", secret_ref="hook", headers={"X-Org": "7"})
    async with client(handler) as c:
        await send_webhook(c, sink, 2.0, secrets, "routing-abc", BODY)
    (request,) = seen
    assert (request.method, str(request.url)) == ("POST", "https://crm.example/hook")
    assert request.content == BODY
    assert request.headers[SIGNATURE_HEADER] == sign(b"s3cret", BODY)
    assert verify(b"s3cret", BODY, request.headers[SIGNATURE_HEADER])
    assert not verify(b"other", BODY, request.headers[SIGNATURE_HEADER])
    assert request.headers[IDEMPOTENCY_HEADER] == "routing-abc"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Org"] == "7"


def test_signature_is_hmac_sha256_hex_of_the_body():
    # RFC 4231 test case 2
    assert (
        sign(b"Jefe", b"what do ya want for nothing?")
        == "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (httpx.Response(500), "webhook: HTTP 500"),
        (httpx.Response(301), "webhook: HTTP 301"),
        (httpx.TimeoutException("slow"), "webhook: timed out after 1.5 s"),
        (httpx.ConnectError("refused"), "webhook: ConnectError"),
    ],
)
async def test_webhook_failures_raise_with_a_reason(secrets, response, reason):
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(response, Exception):
            raise response
        return response

    sink = WebhookSink(url="https://crm.example/hook", secret_ref="hook")
    async with client(handler) as c:
        with pytest.raises(SendFailed) as failed:
            await send_webhook(c, sink, 1.5, secrets, "routing-abc", BODY)
    assert str(failed.value) == reason


async def test_a_missing_secret_fails_the_send_before_any_request(secrets, tmp_path):
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request without a secret")

    async with client(handler) as c:
        with pytest.raises(SendFailed, match="secret 'nope' not found"):
            await send_webhook(
                c, WebhookSink(url="https://x", secret_ref="nope"), 1, secrets, "d", BODY
            )
        with pytest.raises(SendFailed, match="no secret store configured"):
            await send_mautic(
                c, MauticSink(base_url="https://m", credentials_ref="m"), 1, SecretStore(""), BODY
            )
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SecretMissing, match="unreadable: JSONDecodeError"):
        SecretStore(str(tmp_path / "bad.json")).get("hook")


def test_mautic_contact_maps_the_set_traits_and_the_routing_fields():
    assert mautic_contact(json.loads(BODY)) == {
        "email": "ada@example.com",
        "firstname": "Ada",
        "lastname": "Lovelace",
        "company": "Engines",
        "leadflow_lead_id": "lead-1",
        "leadflow_brand": "stacksense",
        "leadflow_owner": "tom",
        "overwriteWithBlank": False,
    }
    bare = mautic_contact({"leadId": "l", "brandId": "b"})
    assert bare == {"leadflow_lead_id": "l", "leadflow_brand": "b", "overwriteWithBlank": False}


async def test_mautic_creates_the_contact_then_adds_it_to_segment_and_campaign(secrets):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/contacts/new"):
            return httpx.Response(201, json={"contact": {"id": 42}})
        return httpx.Response(200, json={"success": 1})

    sink = MauticSink(
        base_url="https://m.example/", credentials_ref="mautic", segment_id="12", campaign_id="4"
    )
    async with client(handler) as c:
        await send_mautic(c, sink, 3, secrets, BODY)
    assert [(r.method, str(r.url)) for r in seen] == [
        ("POST", "https://m.example/api/contacts/new"),
        ("POST", "https://m.example/api/segments/12/contact/42/add"),
        ("POST", "https://m.example/api/campaigns/4/contact/42/add"),
    ]
    basic = "Basic " + base64.b64encode(b"api:pw").decode()
    assert {r.headers["Authorization"] for r in seen} == {basic}
    assert json.loads(seen[0].content) == mautic_contact(json.loads(BODY))


async def test_mautic_without_segment_or_campaign_only_upserts_the_contact(secrets):
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={"contact": {"id": 1}})

    async with client(handler) as c:
        await send_mautic(
            c, MauticSink(base_url="https://m", credentials_ref="mautic"), 3, secrets, BODY
        )
    assert seen == ["/api/contacts/new"]


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        ([httpx.Response(401)], "mautic contact: HTTP 401"),
        (
            [httpx.Response(200, json={"errors": []})],
            "mautic contact: no contact id in the response",
        ),
        ([httpx.Response(200, text="<html>")], "mautic contact: no contact id in the response"),
        (
            [httpx.Response(200, json={"contact": {"id": 3}}), httpx.Response(500)],
            "mautic segment: HTTP 500",
        ),
        (
            [
                httpx.Response(200, json={"contact": {"id": 3}}),
                httpx.Response(200),
                httpx.Response(404),
            ],
            "mautic campaign: HTTP 404",
        ),
        ([httpx.ReadTimeout("slow")], "mautic: timed out after 3 s"),
        ([httpx.ConnectError("refused")], "mautic: ConnectError"),
    ],
)
async def test_mautic_failures_name_the_step(secrets, answers, reason):
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    sink = MauticSink(
        base_url="https://m", credentials_ref="mautic", segment_id="1", campaign_id="2"
    )
    async with client(handler) as c:
        with pytest.raises(SendFailed) as failed:
            await send_mautic(c, sink, 3, secrets, BODY)
    assert str(failed.value) == reason
    assert "ada" not in str(failed.value).lower()

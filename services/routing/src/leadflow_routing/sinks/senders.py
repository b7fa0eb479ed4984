"""Sending one delivery to a webhook or to Mautic. A send either returns (delivered) or
raises SendFailed with a reason that names no personal data. Requests carry the W3C
`traceparent` of the delivery attempt, so a receiver that traces can join the lead's trace."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from leadflow_platform.nats.headers import trace_headers
from leadflow_routing.domain.config import MauticSink, WebhookSink
from leadflow_routing.domain.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign
from leadflow_routing.sinks.secrets import SecretMissing, SecretStore


class SendFailed(Exception):
    pass


def _check(response: httpx.Response, what: str) -> None:
    if not 200 <= response.status_code < 300:
        raise SendFailed(f"{what}: HTTP {response.status_code}")


async def send_webhook(
    client: httpx.AsyncClient,
    sink: WebhookSink,
    timeout: float,
    secrets: SecretStore,
    delivery_id: str,
    body: bytes,
) -> None:
    try:
        secret = secrets.get(sink.secret_ref)
    except SecretMissing as exc:
        raise SendFailed(str(exc)) from None
    headers = {
        **sink.headers,
        **trace_headers(),
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret.encode(), body),
        IDEMPOTENCY_HEADER: delivery_id,
    }
    try:
        response = await client.post(sink.url, content=body, headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        raise SendFailed(f"webhook: timed out after {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise SendFailed(f"webhook: {type(exc).__name__}") from None
    _check(response, "webhook")


_MAUTIC_FIELDS = {
    "email": "email",
    "first_name": "firstname",
    "last_name": "lastname",
    "phone": "phone",
    "company": "company",
    "city": "city",
    "country": "country",
}


def mautic_contact(event: dict[str, Any]) -> dict[str, Any]:
    """The Mautic contact fields from a routing.lead.routed event (JSON form)."""
    traits = event.get("lead", {}).get("traits", {}) or {}
    contact: dict[str, Any] = {
        field: traits[key] for key, field in _MAUTIC_FIELDS.items() if traits.get(key)
    }
    owner = event.get("owner") or {}
    contact["leadflow_lead_id"] = event.get("leadId", "")
    contact["leadflow_brand"] = event.get("brandId", "")
    if owner.get("ownerId"):
        contact["leadflow_owner"] = owner["ownerId"]
    contact["overwriteWithBlank"] = False
    return contact


async def send_mautic(
    client: httpx.AsyncClient,
    sink: MauticSink,
    timeout: float,
    secrets: SecretStore,
    body: bytes,
) -> None:
    """Create or update the contact (Mautic matches it by email), then add it to the segment
    and the campaign. Each call is idempotent in Mautic, so a retry after a partial success
    is harmless."""
    try:
        credentials = secrets.get(sink.credentials_ref)
    except SecretMissing as exc:
        raise SendFailed(str(exc)) from None
    auth = "Basic " + base64.b64encode(credentials.encode()).decode()
    headers = {"Authorization": auth, "Content-Type": "application/json", **trace_headers()}
    base = sink.base_url.rstrip("/")
    try:
        response = await client.post(
            f"{base}/api/contacts/new",
            content=json.dumps(mautic_contact(json.loads(body))).encode(),
            headers=headers,
            timeout=timeout,
        )
        _check(response, "mautic contact")
        try:
            contact_id = response.json()["contact"]["id"]
        except (ValueError, KeyError, TypeError):
            raise SendFailed("mautic contact: no contact id in the response") from None
        if sink.segment_id:
            response = await client.post(
                f"{base}/api/segments/{sink.segment_id}/contact/{contact_id}/add",
                headers=headers,
                timeout=timeout,
            )
            _check(response, "mautic segment")
        if sink.campaign_id:
            response = await client.post(
                f"{base}/api/campaigns/{sink.campaign_id}/contact/{contact_id}/add",
                headers=headers,
                timeout=timeout,
            )
            _check(response, "mautic campaign")
    except httpx.TimeoutException:
        raise SendFailed(f"mautic: timed out after {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise SendFailed(f"mautic: {type(exc).__name__}") from None

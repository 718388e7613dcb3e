"""``fhir-pa track`` (wait for a final decision) and ``fhir-pa listen`` (receive notifications).

``listen`` is the long-running receiver an EHR deploys where the payer can reach it; ``track`` waits on the
same ledger and polls when notifications stop. ``track --listen`` runs both in one process, for a desk or a demo.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from fhir_pa.cli.options import (
    DEFAULT_LEDGER,
    ClientId,
    JsonFlag,
    KeyFile,
    LedgerPath,
    PayerUrl,
    Scopes,
    TokenEndpoint,
    open_ledger,
    payer_config,
)
from fhir_pa.config import PayerConfig, PollSettings
from fhir_pa.errors import ConfigurationError, InputError
from fhir_pa.pas.decision import decision_as_json
from fhir_pa.pas.receiver import NotificationReceiver
from fhir_pa.pas.submit import PasClient
from fhir_pa.pas.subscription import SubscriptionSettings
from fhir_pa.pas.track import TrackResult
from fhir_pa.serve import AppServer

NotifyUrl = Annotated[str | None, typer.Option(
    "--notify-url", envvar="FHIR_PA_NOTIFY_URL",
    help="Our notification endpoint as the payer reaches it; enables a PAS Subscription.")]
FilterKey = Annotated[str, typer.Option("--filter-key", help="Subscription filter key the payer expects.")]
PollMode = Annotated[Literal["auto", "read", "search", "inquire"], typer.Option("--poll-mode",
                                                                               help="How to poll.")]
PollFirst = Annotated[float, typer.Option("--poll-first", help="Seconds after submission before the first poll.")]
PollMax = Annotated[float, typer.Option("--poll-max", help="Longest wait between polls, in seconds.")]
FallbackAfter = Annotated[float, typer.Option(
    "--fallback-after", help="With notifications: poll when the payer has been silent this many seconds.")]
Listen = Annotated[str | None, typer.Option(
    "--listen", help="Also run the notification receiver on HOST:PORT in this process.")]


def register(app: typer.Typer) -> None:
    app.command("track")(track)
    app.command("listen")(listen)


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigurationError(f"--listen wants HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def tracking_config(base: PayerConfig, notify_url: str | None, filter_key: str, poll_mode: str,
                    poll_first: float, poll_max: float, fallback_after: float) -> PayerConfig:
    poll = PollSettings(mode=poll_mode, first_delay=poll_first, max_delay=max(poll_max, poll_first),  # type: ignore[arg-type]
                        fallback_after=fallback_after)
    subscription = SubscriptionSettings(endpoint=notify_url, filter_key=filter_key) if notify_url else None
    return dataclasses.replace(base, poll=poll, subscription=subscription)


def result_json(result: TrackResult) -> dict[str, object]:
    view: dict[str, object] = {"record_id": result.record_id, "order_id": result.order_id, "state": result.state,
                               "final": result.final, "channel": result.channel, "clock": result.clock,
                               "polls": result.polls}
    if result.decision is not None:
        view["decision"] = decision_as_json(result.decision)
    return view


def track(
    key: Annotated[str, typer.Argument(help="Ledger record id or order id.")],
    payer: PayerUrl,
    client_id: ClientId,
    key_file: KeyFile,
    token_endpoint: TokenEndpoint = None,
    scope: Scopes = None,
    ledger: LedgerPath = DEFAULT_LEDGER,
    notify_url: NotifyUrl = None,
    filter_key: FilterKey = "org-identifier",
    listen_on: Listen = None,
    poll_mode: PollMode = "auto",
    poll_first: PollFirst = 30.0,
    poll_max: PollMax = 3600.0,
    fallback_after: FallbackAfter = 900.0,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Give up waiting after this many seconds.")]
    = None,
    as_json: JsonFlag = False,
) -> None:
    """Wait for the final decision on a request (notifications where offered, polling otherwise)."""
    config = tracking_config(payer_config(payer, client_id, key_file, token_endpoint, scope), notify_url, filter_key,
                             poll_mode, poll_first, poll_max, fallback_after)
    store = open_ledger(ledger)
    console = Console(stderr=True)
    server = None
    try:
        if listen_on:
            host, port = _host_port(listen_on)
            server = AppServer(NotificationReceiver(store), host, port, name="fhir-pa-listen").start()
        with PasClient(config, ledger=store) as client:
            result = client.track(key, timeout=timeout, on_update=lambda u: console.print(
                f"{u.record.order_id}: {u.decision.status.value} (via {u.channel})"))
    finally:
        if server is not None:
            server.stop()
        store.close()
    if as_json:
        typer.echo(json.dumps(result_json(result), indent=2))
        return
    state = result.state if result.final else f"{result.state} (not final yet)"
    Console().print(f"{result.order_id}: [bold]{state}[/bold] via {result.channel or '-'}; CMS clock: {result.clock}")


def listen(
    ledger: LedgerPath = DEFAULT_LEDGER,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8088,
    path: Annotated[str, typer.Option("--path", help="URL path of the notification endpoint.")] = "/notify",
    jwks: Annotated[Path | None, typer.Option("--jwks", help="Also publish this public JWKS at /jwks.json (the "
                                                             "jku for our CDS Hooks client JWTs).")] = None,
) -> None:
    """Receive PAS notifications into the ledger until Ctrl-C (payers authenticate with our Subscription token)."""
    published = load_public_jwks(jwks) if jwks is not None else None
    store = open_ledger(ledger)
    receiver = NotificationReceiver(store, path=path, jwks=published)
    recovered = asyncio.run(receiver.recover())
    server = AppServer(receiver, host, port, name="fhir-pa-listen", log_level="info")
    try:
        server.serve_forever(ready=lambda s: typer.echo(
            f"listening on {s.base_url}{path} (ledger {ledger}; {recovered} stored notification(s) recovered)",
            err=True))
    finally:
        store.close()


def load_public_jwks(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read the JWKS {path}: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path} is not a JWKS object", path="$")
    return data

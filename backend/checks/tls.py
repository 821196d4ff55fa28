"""TLS: the certificate's days left and chain (P13), and after the switch the security
headers the portal sends (Q15)."""

from __future__ import annotations

import asyncio
import ssl
import time
import urllib.parse
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cryptography import x509

from ..lazy import lazy_module
from .context import Context, ssl_context
from .model import Outcome, check, errored, failed, passed, skipped, warned

if TYPE_CHECKING:
    import httpx
else:  # loaded on first use: checks that make no request never pay for it
    httpx = lazy_module("httpx")


def tls_target(ctx: Context) -> tuple[str, int, str] | None:
    """(host, port, server name) from ``tls_target`` or an https public URL."""
    vc = ctx.vc
    if vc.tls_target:
        host, _, port = vc.tls_target.rpartition(":")
        host = host.strip("[]")
        return host, int(port), vc.tls_server_name or host
    public = ctx.config.portal.public_url
    if public and public.startswith("https://"):
        parts = urllib.parse.urlsplit(public)
        host = parts.hostname or ""
        return host, parts.port or 443, vc.tls_server_name or host
    return None


async def peer_certificate(
    host: str, port: int, server_name: str, context: ssl.SSLContext, timeout: float
) -> bytes:
    """The DER certificate the server presents, after a handshake with ``context``."""
    _reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=context, server_hostname=server_name), timeout
    )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        if not der:
            raise ssl.SSLError("the server presented no certificate")
        return der
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 1)
        except Exception:
            pass


@check("P13", "TLS certificate valid long enough, chain verified", "tls", weight=7, critical=True)
async def certificate(ctx: Context) -> list[Outcome]:
    vc = ctx.vc
    target = tls_target(ctx)
    if target is None:
        return [skipped("no TLS endpoint: the public URL is not https and no tls_target is set")]
    host, port, name = target
    where = f"{name} ({host}:{port})" if name != host else f"{host}:{port}"
    threshold = f">= {vc.tls_warn_days:g} days, chain verified (fail < {vc.tls_fail_days:g})"
    verify_error = None
    try:
        der = await peer_certificate(host, port, name, ssl_context(ctx.config), vc.http_timeout)
    except ssl.SSLCertVerificationError as exc:
        verify_error = exc.verify_message or str(exc)
        insecure = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        try:
            der = await peer_certificate(host, port, name, insecure, vc.http_timeout)
        except (OSError, TimeoutError, ssl.SSLError) as again:
            return [
                failed(
                    f"{where}: chain not verified ({verify_error}); then {again}",
                    threshold=threshold,
                )
            ]
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        return [
            errored(
                f"no TLS handshake with {where}: {exc or type(exc).__name__}", threshold=threshold
            )
        ]
    cert = x509.load_der_x509_certificate(der)
    not_after = cert.not_valid_after_utc
    days = round((not_after - datetime.now(UTC)).total_seconds() / 86400, 1)
    expires = not_after.strftime("%Y-%m-%d")
    meta = {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_after": not_after.isoformat(),
        "verified": verify_error is None,
    }
    kw = {"value": days, "unit": "days", "threshold": threshold, "meta": meta}
    if verify_error is not None:
        return [failed(f"{where}: chain not verified: {verify_error} (expires {expires})", **kw)]
    if days < vc.tls_fail_days:
        return [failed(f"{where}: certificate expires in {days:g} days ({expires})", **kw)]
    if days < vc.tls_warn_days:
        return [warned(f"{where}: certificate expires in {days:g} days ({expires})", **kw)]
    return [passed(f"{where}: chain verified, {days:g} days left (until {expires})", **kw)]


@check("Q15", "TLS and security headers present", "tls", weight=4)
async def security_headers(ctx: Context) -> list[Outcome]:
    url = ctx.public("/")
    if url is None:
        return [skipped("no public_url configured")]
    https = url.startswith("https://")
    wanted = [
        spec
        for spec in ctx.vc.security_headers
        if https or spec.lower() != "strict-transport-security"
    ]
    threshold = "present: " + ", ".join(wanted)
    started = time.perf_counter()
    try:
        response = await ctx.http.get(url)
    except httpx.HTTPError as exc:
        what = "TLS or connection failure" if https else "no answer"
        return [failed(f"{what} for {url}: {exc or type(exc).__name__}", threshold=threshold)]
    ms = (time.perf_counter() - started) * 1000
    missing = [
        spec
        for spec in wanted
        if not any(alt.strip() in response.headers for alt in spec.split("|"))
    ]
    kw = {
        "value": len(missing),
        "unit": "missing",
        "threshold": threshold,
        "meta": {"missing": missing, "url": url},
        "duration_ms": ms,
    }
    if not missing:
        scheme = "TLS verified, " if https else "plain http (HSTS not applicable), "
        return [passed(f"{scheme}all {len(wanted)} security headers present", **kw)]
    text = f"missing on {url}: {', '.join(missing)}"
    if https:
        return [failed(text, **kw)]
    return [warned(f"plain http, {text}", **kw)]

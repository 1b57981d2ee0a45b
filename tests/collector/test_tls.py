"""TLS and bearer tokens on a real collector subprocess, fed by the real SDK exporters (HTTPS, gRPC+TLS).

The certificates are generated here (``cryptography``): a private CA and a server certificate for
127.0.0.1 and localhost. The exporters trust that CA only, so a passing export proves the collector served
TLS with exactly that certificate.
"""

from __future__ import annotations

import datetime
import hmac
import http.client
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from loratrace.cli import cli
from loratrace.collector import auth
from loratrace.store import query

from .conftest import free_port

TOKEN = "tls-test-token-7f3a"
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@dataclass(frozen=True)
class Certificate:
    ca: Path  # the private CA clients trust
    cert: Path  # the collector's certificate, signed by the CA
    key: Path

    def ca_pem(self) -> bytes:
        return self.ca.read_bytes()

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A private CA and a server certificate for 127.0.0.1 / localhost, as an operator would deploy them."""
    folder = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loratrace test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = Certificate(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    paths.ca.write_bytes(_pem(ca))
    paths.cert.write_bytes(_pem(server))
    paths.key.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@dataclass
class TlsCollector:
    store: Path
    http_port: int
    grpc_port: int
    process: subprocess.Popen[bytes]
    certificate: Certificate

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.http_port}"

    def health(self) -> dict:
        with urllib.request.urlopen(
            f"{self.https}/health", timeout=5, context=self.certificate.client_context()
        ) as response:
            return json.loads(response.read())


@pytest.fixture(scope="module")
def tls_collector(certificate: Certificate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsCollector]:
    store = tmp_path_factory.mktemp("tls-store") / "store"
    http_port, grpc_port = free_port(), free_port()
    # the token through the environment variable, the way the collector-config docs deploy it
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "LORATRACE_AUTH_TOKEN": TOKEN}
    args = [str(Path(sys.executable).with_name("loratrace")), "collect", "--store", str(store)]
    args += ["--http", f"127.0.0.1:{http_port}", "--grpc", f"127.0.0.1:{grpc_port}"]
    args += ["--tls-cert", str(certificate.cert), "--tls-key", str(certificate.key)]
    log = store.parent / "collector.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(args, env=env, stdout=output, stderr=subprocess.STDOUT)
    running = TlsCollector(store, http_port, grpc_port, process, certificate)
    deadline = time.monotonic() + 60
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"collector exited with {process.returncode}: {log.read_text()}")
            try:
                if running.health()["status"] == "ok":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"TLS collector not healthy within 60 s: {log.read_text()}")
            time.sleep(0.1)
        yield running
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=60)


def _spans(*names: str) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tls-test")
    for name in names:
        with tracer.start_as_current_span(name, attributes={"gen_ai.request.model": name}):
            pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def _ids(spans: list[ReadableSpan]) -> set[tuple[str, str]]:
    return {
        (format(s.get_span_context().trace_id, "032x"), format(s.get_span_context().span_id, "016x")) for s in spans
    }


def _stored(store: Path) -> set[tuple[str, str]]:
    frame = query(store, "SELECT trace_id, span_id FROM spans")
    return set(zip(frame["trace_id"].to_list(), frame["span_id"].to_list(), strict=True))


def _wait_for(predicate, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _raw_request() -> bytes:
    span = Span(trace_id=b"\x07" * 16, span_id=b"\x08" * 8, name="raw", start_time_unix_nano=1)
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])]
    ).SerializeToString()


def _https_post(running: TlsCollector, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(
        f"{running.https}/v1/traces",
        data=_raw_request(),
        method="POST",
        headers={"Content-Type": "application/x-protobuf", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=10, context=running.certificate.client_context()) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def _grpc_channel(running: TlsCollector) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(root_certificates=running.certificate.ca_pem())
    return grpc.secure_channel(f"127.0.0.1:{running.grpc_port}", credentials)


@pytest.fixture
def no_ca_bundle_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a Session's verify, which is where the SDK
    # HTTP exporter puts certificate_file: with either variable set, certificate_file is silently ignored
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_ca_bundle_env")
def test_sdk_exporters_over_https_and_grpc_tls_with_the_token_land_in_the_store(
    tls_collector: TlsCollector,
) -> None:
    over_http, over_grpc = _spans("http-1", "http-2"), _spans("grpc-1")
    http_exporter = OTLPSpanExporter(
        endpoint=f"{tls_collector.https}/v1/traces",
        certificate_file=str(tls_collector.certificate.ca),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    grpc_exporter = GrpcSpanExporter(
        endpoint=f"https://127.0.0.1:{tls_collector.grpc_port}",
        credentials=grpc.ssl_channel_credentials(root_certificates=tls_collector.certificate.ca_pem()),
        headers={"authorization": f"Bearer {TOKEN}"},
    )
    try:
        assert http_exporter.export(over_http) == SpanExportResult.SUCCESS
        assert grpc_exporter.export(over_grpc) == SpanExportResult.SUCCESS
    finally:
        http_exporter.shutdown()
        grpc_exporter.shutdown()
    expected = _ids(over_http) | _ids(over_grpc)
    _wait_for(lambda: expected <= _stored(tls_collector.store), timeout=5, what="the TLS-exported spans")
    names = query(
        tls_collector.store,
        "SELECT name FROM spans WHERE span_id IN (SELECT unnest(?)) ORDER BY name",
        [[span_id for _, span_id in expected]],
    )["name"].to_list()
    assert names == ["grpc-1", "http-1", "http-2"]


@pytest.mark.usefixtures("no_ca_bundle_env")
def test_wrong_or_missing_token_is_refused_on_both_protocols(tls_collector: TlsCollector) -> None:
    before = tls_collector.health()["accepted_spans"]
    status, headers = _https_post(tls_collector, {})
    assert (status, headers.get("WWW-Authenticate")) == (401, "Bearer")
    assert _https_post(tls_collector, {"Authorization": "Bearer wrong"})[0] == 401
    assert _https_post(tls_collector, {"Authorization": TOKEN})[0] == 401  # no scheme
    assert _https_post(tls_collector, {"Authorization": f"Basic {TOKEN}"})[0] == 401
    assert _https_post(tls_collector, {"Authorization": f"Bearer {TOKEN}x"})[0] == 401
    # the scheme is case-insensitive (RFC 9110); the token is not
    assert _https_post(tls_collector, {"Authorization": f"bearer {TOKEN}"})[0] == 200
    with _grpc_channel(tls_collector) as channel:
        export = channel.unary_unary(TRACE_EXPORT)
        for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", TOKEN),)):
            with pytest.raises(grpc.RpcError) as denied:
                export(_raw_request(), metadata=metadata, timeout=10)
            assert denied.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert export(_raw_request(), metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=10) == b""
    # the SDK exporters treat 401 / UNAUTHENTICATED as final failures (no retry loop)
    spans = _spans("refused")
    http_exporter = OTLPSpanExporter(
        endpoint=f"{tls_collector.https}/v1/traces",
        certificate_file=str(tls_collector.certificate.ca),
        headers={"Authorization": "Bearer wrong"},
    )
    grpc_exporter = GrpcSpanExporter(
        endpoint=f"https://127.0.0.1:{tls_collector.grpc_port}",
        credentials=grpc.ssl_channel_credentials(root_certificates=tls_collector.certificate.ca_pem()),
    )
    try:
        assert http_exporter.export(spans) == SpanExportResult.FAILURE
        assert grpc_exporter.export(spans) == SpanExportResult.FAILURE
    finally:
        http_exporter.shutdown()
        grpc_exporter.shutdown()
    # exactly the two authorised raw requests (one span each) were accepted
    assert tls_collector.health()["accepted_spans"] == before + 2


def test_plaintext_clients_cannot_talk_to_the_tls_ports(tls_collector: TlsCollector) -> None:
    before = tls_collector.health()["accepted_spans"]
    request = urllib.request.Request(
        f"http://127.0.0.1:{tls_collector.http_port}/v1/traces",
        data=_raw_request(),
        method="POST",
        headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {TOKEN}"},
    )
    with pytest.raises((OSError, http.client.HTTPException)):
        urllib.request.urlopen(request, timeout=10)
    with grpc.insecure_channel(f"127.0.0.1:{tls_collector.grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary(TRACE_EXPORT)(
                _raw_request(), metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=10
            )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    # a client that trusts some other root must not accept the collector's certificate
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(f"{tls_collector.https}/health", timeout=10, context=ssl.create_default_context())
    assert tls_collector.health()["accepted_spans"] == before


def test_a_silent_tls_client_does_not_stall_other_clients(tls_collector: TlsCollector) -> None:
    # connect and never start the handshake: the accept loop must keep serving everyone else
    with socket.create_connection(("127.0.0.1", tls_collector.http_port), timeout=10):
        started = time.monotonic()
        assert tls_collector.health()["status"] == "ok"
        assert time.monotonic() - started < 5


def test_bearer_check_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert auth.bearer_matches("Bearer abc", "abc")
    assert not auth.bearer_matches("Token abc", "abc")  # wrong scheme: still compared, still refused
    assert not auth.bearer_matches(None, "abc")
    assert calls == [(b"abc", b"abc"), (b"abc", b"abc"), (b"", b"abc")]


@pytest.mark.parametrize(
    ("flags", "exposed"),
    [
        pytest.param(["--http", "0.0.0.0:0"], "0.0.0.0", id="http-any"),
        pytest.param(["--grpc", "0.0.0.0:0"], "0.0.0.0", id="grpc-any"),
        pytest.param(["--http", "[::]:0"], "::", id="http-ipv6-any"),
        pytest.param(["--grpc", "collector.example:0"], "collector.example", id="grpc-hostname"),
    ],
)
def test_non_loopback_bind_without_a_token_is_refused(tmp_path: Path, flags: list[str], exposed: str) -> None:
    runner = CliRunner()
    store = tmp_path / "s"
    result = runner.invoke(cli, ["collect", "--store", str(store), *flags], env={"LORATRACE_AUTH_TOKEN": None})
    assert result.exit_code == 1
    assert f"binding {exposed} exposes the collector" in result.output
    assert "--auth-token" in result.output
    assert "LORATRACE_AUTH_TOKEN" in result.output
    assert not store.exists()  # refused before anything was created or bound
    blank = runner.invoke(cli, ["collect", "--store", str(store), *flags], env={"LORATRACE_AUTH_TOKEN": "  "})
    assert blank.exit_code == 1
    assert "--auth-token" in blank.output


def test_tls_files_are_checked_at_start(tmp_path: Path, certificate: Certificate) -> None:
    runner = CliRunner()
    store = str(tmp_path / "s")
    only_cert = runner.invoke(cli, ["collect", "--store", store, "--tls-cert", str(certificate.cert)])
    assert only_cert.exit_code == 1
    assert "TLS needs both --tls-cert and --tls-key" in only_cert.output
    swapped = runner.invoke(
        cli,
        ["collect", "--store", store, "--tls-cert", str(certificate.key), "--tls-key", str(certificate.cert)],
    )
    assert swapped.exit_code == 1
    assert f"cannot use --tls-cert {str(certificate.key)!r}" in swapped.output

"""The OpenTelemetry Collector configurations in collector-config/ against loratrace's defaults.

The collector binary cannot run here, so each file is parsed and checked the way ``otelcol-contrib`` would
resolve it (``${env:NAME:-default}`` expanded with the defaults, maps deep-merged and lists replaced for
overlays), plus the rules loratrace adds: memory_limiter first and batch last, a disk queue, a bearer token
from the environment only, loopback listeners by default, routing by trace id, no prompt text by default.

Every check is a function returning a list of problems. The tests assert that the shipped files have none,
and that a deliberately broken copy of each file yields the expected problem, so no check passes vacuously.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from loratrace import semconv
from loratrace._setup import DEFAULT_GRPC_ENDPOINT, DEFAULT_HTTP_ENDPOINT

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "collector-config"
DOCS = REPO_ROOT / "docs" / "collector-config.md"
AGENT = CONFIG_DIR / "agent-gateway.yaml"
LOAD_BALANCER = CONFIG_DIR / "load-balancer.yaml"
KEEP_CONTENT = CONFIG_DIR / "overlays" / "keep-content.yaml"
FULL_CONFIGS = [AGENT, LOAD_BALANCER]

LORATRACE_HTTP_PORT = urlsplit(DEFAULT_HTTP_ENDPOINT).port
LORATRACE_GRPC_PORT = urlsplit(DEFAULT_GRPC_ENDPOINT).port
TOKEN_ENV = "LORATRACE_AUTH_TOKEN"
# The request shape loratrace's ingest is benchmarked with (issue 3: batches of 512 spans).
LORATRACE_BATCH_SPANS = 512
CONTENT_KEYS = (
    semconv.GEN_AI_INPUT_MESSAGES,
    semconv.GEN_AI_OUTPUT_MESSAGES,
    semconv.INPUT_VALUE,
    semconv.OUTPUT_VALUE,
)

# Component types, with the lower_snake_case names newer collector releases give some of them (the old
# names stay as deprecated aliases).
OTLPHTTP = {"otlphttp", "otlp_http"}
LOADBALANCING = {"loadbalancing", "load_balancing"}
BEARER = {"bearertokenauth", "bearer_token_auth"}
FILE_STORAGE = {"file_storage"}
KINDS = ("receivers", "processors", "exporters")

_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


# --- resolving a configuration the way the collector does -------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    assert isinstance(config, dict), f"{path.name} is not a YAML mapping"
    return config


def expand(value: Any) -> Any:
    """``${env:NAME:-default}`` with no variable set: the value each file gives when nothing is configured.

    A whole-value reference is re-read as YAML (the collector types it: ``5000`` is an int), an embedded one
    is substituted as text, as the collector's env provider does.
    """
    if isinstance(value, dict):
        return {key: expand(item) for key, item in value.items()}
    if isinstance(value, list):
        return [expand(item) for item in value]
    if not isinstance(value, str):
        return value
    whole = _ENV_REF.fullmatch(value)
    if whole:
        default = whole.group(2) or ""
        return yaml.safe_load(default) if default else ""
    return _ENV_REF.sub(lambda match: match.group(2) or "", value)


def merge(base: Any, overlay: Any) -> Any:
    """The collector's merge of several ``--config`` files: maps merged key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    return overlay


def ctype(component_id: str) -> str:
    """``otlphttp/loratrace`` -> ``otlphttp``."""
    return component_id.split("/", 1)[0]


def pipelines(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return (config.get("service") or {}).get("pipelines") or {}


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (dotted path, value) pair below ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            yield child, value
            yield from walk(value, child)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            child = f"{path}[{index}]"
            yield child, value
            yield from walk(value, child)


def env_vars(path: Path) -> set[str]:
    return {match.group(1) for match in _ENV_REF.finditer(path.read_text(encoding="utf-8"))}


def exporters_of_type(config: dict[str, Any], types: set[str]) -> dict[str, dict[str, Any]]:
    return {cid: cfg or {} for cid, cfg in (config.get("exporters") or {}).items() if ctype(cid) in types}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --- the checks -------------------------------------------------------------------------------------------


def check_references(config: dict[str, Any]) -> list[str]:
    """Every component a pipeline names is defined, and every defined one is used."""
    problems = []
    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    if not pipelines(config):
        problems.append("service.pipelines is empty")
    for name, pipeline in pipelines(config).items():
        for kind in KINDS:
            for cid in pipeline.get(kind) or []:
                used[kind].add(cid)
                if cid not in (config.get(kind) or {}):
                    problems.append(f"pipeline {name} uses {kind} {cid!r}, which is not defined")
        for kind in ("receivers", "exporters"):
            if not pipeline.get(kind):
                problems.append(f"pipeline {name} has no {kind}")
    for kind in KINDS:
        for cid in set(config.get(kind) or {}) - used[kind]:
            problems.append(f"{kind} {cid!r} is defined but no pipeline uses it")
    enabled = set((config.get("service") or {}).get("extensions") or [])
    defined = set(config.get("extensions") or {})
    problems += [f"service.extensions lists {e!r}, which is not defined" for e in sorted(enabled - defined)]
    problems += [f"extension {e!r} is defined but not in service.extensions" for e in sorted(defined - enabled)]
    return problems


def check_processor_order(config: dict[str, Any]) -> list[str]:
    problems = []
    for name, pipeline in pipelines(config).items():
        types = [ctype(cid) for cid in pipeline.get("processors") or []]
        if not types or types[0] != "memory_limiter":
            problems.append(f"pipeline {name}: memory_limiter must be the first processor, got {types}")
        if not types or types[-1] != "batch":
            problems.append(f"pipeline {name}: batch must be the last processor, got {types}")
        if types.count("memory_limiter") != 1 or types.count("batch") != 1:
            problems.append(f"pipeline {name}: exactly one memory_limiter and one batch expected, got {types}")
    return problems


def check_batch_size(config: dict[str, Any]) -> list[str]:
    problems = []
    for cid, settings in (config.get("processors") or {}).items():
        if ctype(cid) != "batch":
            continue
        settings = expand(settings or {})
        size, max_size = settings.get("send_batch_size"), settings.get("send_batch_max_size")
        if size != LORATRACE_BATCH_SPANS:
            problems.append(f"{cid}: send_batch_size {size!r}, expected {LORATRACE_BATCH_SPANS}")
        if max_size is None or max_size < LORATRACE_BATCH_SPANS:
            problems.append(f"{cid}: send_batch_max_size {max_size!r} must bound requests at >= send_batch_size")
    return problems


def check_memory_limiter(config: dict[str, Any]) -> list[str]:
    problems = []
    for cid, settings in (config.get("processors") or {}).items():
        if ctype(cid) != "memory_limiter":
            continue
        settings = settings or {}
        if "check_interval" not in settings:
            problems.append(f"{cid}: check_interval is required")
        if "limit_mib" not in settings and "limit_percentage" not in settings:
            problems.append(f"{cid}: limit_mib or limit_percentage is required")
    return problems


def check_loopback_listeners(config: dict[str, Any]) -> list[str]:
    """Receivers and health_check listen on loopback unless an environment variable says otherwise."""
    listeners = []
    for cid, settings in (config.get("receivers") or {}).items():
        for protocol, proto_settings in ((settings or {}).get("protocols") or {}).items():
            listeners.append((f"receivers.{cid}.protocols.{protocol}", (proto_settings or {}).get("endpoint")))
    for cid, settings in (config.get("extensions") or {}).items():
        if ctype(cid) == "health_check":
            listeners.append((f"extensions.{cid}", (settings or {}).get("endpoint")))
    problems = []
    for where, raw in listeners:
        if raw is None:
            # The component's own default (0.0.0.0 in older releases) would apply: state it explicitly.
            problems.append(f"{where}: endpoint must be explicit")
            continue
        host = str(expand(raw)).rsplit(":", 1)[0]
        if not is_loopback(host):
            problems.append(f"{where}: {raw!r} listens on {host!r} by default, not on loopback")
    return problems


def check_agent_exporter_targets_loratrace(config: dict[str, Any]) -> list[str]:
    exporters = exporters_of_type(config, OTLPHTTP)
    if not exporters:
        return ["no otlphttp exporter"]
    problems = []
    for cid, settings in exporters.items():
        url = urlsplit(str(expand(settings.get("endpoint", ""))))
        if url.scheme not in ("http", "https") or url.port != LORATRACE_HTTP_PORT:
            problems.append(f"{cid}: endpoint {url.geturl()!r} is not loratrace's OTLP/HTTP port {LORATRACE_HTTP_PORT}")
        if url.path not in ("", "/"):
            # The exporter appends /v1/traces and /v1/metrics to the base URL, the paths loratrace serves.
            problems.append(f"{cid}: endpoint {url.geturl()!r} has a path; give the base URL")
        for signal in ("traces", "metrics"):
            explicit = settings.get(f"{signal}_endpoint")
            if explicit is not None and urlsplit(str(expand(explicit))).path != f"/v1/{signal}":
                problems.append(f"{cid}: {signal}_endpoint {explicit!r} is not loratrace's /v1/{signal}")
    return problems


def check_load_balancer_backends(config: dict[str, Any]) -> list[str]:
    exporters = exporters_of_type(config, LOADBALANCING)
    if not exporters:
        return ["no loadbalancing exporter"]
    problems = []
    for cid, settings in exporters.items():
        otlp = ((settings.get("protocol") or {}).get("otlp")) or {}
        if "endpoint" in otlp:
            problems.append(f"{cid}: protocol.otlp.endpoint is overridden by the resolver; leave it out")
        resolver = settings.get("resolver") or {}
        if "static" in resolver:
            hostnames = expand((resolver["static"] or {}).get("hostnames") or [])
            if len(hostnames) < 2:
                problems.append(f"{cid}: the static resolver lists {len(hostnames)} backend(s); a tier needs several")
            if len(set(hostnames)) != len(hostnames):
                problems.append(f"{cid}: the static resolver lists a backend twice: {hostnames}")
            for hostname in hostnames:
                # Without a port the exporter assumes 4317; state it, so it is checked against loratrace's.
                port = str(hostname).rsplit(":", 1)[1] if ":" in str(hostname) else None
                if port != str(LORATRACE_GRPC_PORT):
                    problems.append(
                        f"{cid}: backend {hostname!r} is not on loratrace's OTLP/gRPC port {LORATRACE_GRPC_PORT}"
                    )
        elif "dns" in resolver:
            if str(expand((resolver["dns"] or {}).get("port"))) != str(LORATRACE_GRPC_PORT):
                problems.append(f"{cid}: the DNS resolver's port is not loratrace's {LORATRACE_GRPC_PORT}")
        else:
            problems.append(f"{cid}: resolver must be static or dns")
    return problems


def check_routing(config: dict[str, Any]) -> list[str]:
    problems = []
    lb_exporters = exporters_of_type(config, LOADBALANCING)
    for name, pipeline in pipelines(config).items():
        signal = ctype(name)
        for cid in pipeline.get("exporters") or []:
            if cid not in lb_exporters:
                continue
            key = lb_exporters[cid].get("routing_key")
            if signal == "traces" and key != "traceID":
                problems.append(f"pipeline {name}: {cid} routes by {key!r}, not traceID")
            if signal == "metrics" and key in (None, "traceID"):
                # metrics carry no trace id; the exporter README says never to route metrics by traceID.
                problems.append(f"pipeline {name}: {cid} must route metrics by service/resource/metric, got {key!r}")
    if "traces" in pipelines(config) and not any(
        cid in lb_exporters for cid in pipelines(config)["traces"].get("exporters") or []
    ):
        problems.append("the traces pipeline does not export through a loadbalancing exporter")
    return problems


def _exporter_helpers(config: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, settings) of every exporter and loadbalancing sub-exporter (each has queue/retry settings)."""
    for cid, settings in (config.get("exporters") or {}).items():
        settings = settings or {}
        yield cid, settings
        otlp = (settings.get("protocol") or {}).get("otlp")
        if otlp is not None:
            yield f"{cid}.protocol.otlp", otlp or {}


def check_persistent_queue(config: dict[str, Any]) -> list[str]:
    """Each exporter queues on disk through a defined, enabled file_storage; sub-exporters never queue."""
    problems = []
    extensions = config.get("extensions") or {}
    enabled = set((config.get("service") or {}).get("extensions") or [])
    for name, settings in _exporter_helpers(config):
        queue = settings.get("sending_queue") or {}
        retry = settings.get("retry_on_failure") or {}
        sub_exporter = ".protocol." in name
        if not retry.get("enabled", False):
            problems.append(f"{name}: retry_on_failure must be enabled explicitly")
        if sub_exporter:
            if queue.get("enabled", True) or "storage" in queue:
                # All backends of one loadbalancing exporter would share one storage file (contrib #16826),
                # and an in-memory queue here would hold data the top-level disk queue already released.
                problems.append(f"{name}: the per-backend sending_queue must be disabled")
            continue
        storage = queue.get("storage")
        if not queue.get("enabled", False) or storage is None:
            problems.append(f"{name}: sending_queue must be enabled with a storage extension")
        elif storage not in extensions or ctype(storage) not in FILE_STORAGE:
            problems.append(f"{name}: sending_queue.storage {storage!r} is not a defined file_storage extension")
        elif storage not in enabled:
            problems.append(f"{name}: sending_queue.storage {storage!r} is not enabled in service.extensions")
    for cid, settings in extensions.items():
        if ctype(cid) in FILE_STORAGE and not (settings or {}).get("directory"):
            problems.append(f"{cid}: directory must be explicit")
    return problems


def check_auth(config: dict[str, Any], *, required_at: list[str]) -> list[str]:
    """Every authenticator is a defined, enabled bearertokenauth whose token comes from the environment."""
    problems = []
    extensions = config.get("extensions") or {}
    enabled = set((config.get("service") or {}).get("extensions") or [])
    authenticated = set()
    for path, value in walk(config):
        if not path.endswith(".auth") or not isinstance(value, dict):
            continue
        authenticated.add(path.removesuffix(".auth"))
        name = value.get("authenticator")
        if name not in extensions or ctype(str(name)) not in BEARER:
            problems.append(f"{path}: authenticator {name!r} is not a defined bearertokenauth extension")
        elif name not in enabled:
            problems.append(f"{path}: authenticator {name!r} is not enabled in service.extensions")
    for where in required_at:
        if where not in authenticated:
            problems.append(f"{where}: no auth.authenticator")
    for cid, settings in extensions.items():
        if ctype(cid) not in BEARER:
            continue
        settings = settings or {}
        token = settings.get("token")
        if "tokens" in settings:
            problems.append(f"{cid}: a token list in the file is a literal secret")
        if token is None and "filename" not in settings:
            problems.append(f"{cid}: needs token (from the environment) or filename")
        if token is not None and token != f"${{env:{TOKEN_ENV}}}":
            # Not even a default: with the variable unset the collector must refuse to start.
            problems.append(f"{cid}: token must be exactly ${{env:{TOKEN_ENV}}}, got {token!r}")
    return problems


def check_grpc_auth_has_tls(config: dict[str, Any]) -> list[str]:
    """bearertokenauth refuses to send a token over plaintext gRPC: authenticated gRPC clients use TLS."""
    problems = []
    for cid, settings in exporters_of_type(config, LOADBALANCING).items():
        otlp = ((settings.get("protocol") or {}).get("otlp")) or {}
        if "auth" in otlp and (otlp.get("tls") or {}).get("insecure", False):
            problems.append(f"{cid}.protocol.otlp: auth over tls.insecure=true fails at every export")
    return problems


def check_no_literal_secrets(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    problems = []
    for match in re.finditer(r"(?im)^\s*(token|tokens|password|api_key|authorization)\s*:\s*(\S.*)$", text):
        if not _ENV_REF.fullmatch(match.group(2).strip()):
            problems.append(f"{path.name}: {match.group(1)} is set to a literal: {match.group(0).strip()!r}")
    if re.search(r"(?i)bearer\s+[a-z0-9._-]{8,}", text):
        problems.append(f"{path.name}: a literal bearer token")
    return problems


def check_content_dropped(config: dict[str, Any]) -> list[str]:
    """The traces pipeline deletes prompt/completion text on spans and span events."""
    traces = pipelines(config).get("traces") or {}
    deleted: dict[str, set[str]] = {"span": set(), "spanevent": set()}
    for cid in traces.get("processors") or []:
        settings = (config.get("processors") or {}).get(cid) or {}
        if ctype(cid) == "transform":
            for group in settings.get("trace_statements") or []:
                context = group.get("context")
                for statement in group.get("statements") or []:
                    match = re.fullmatch(r'\s*delete_key\(attributes,\s*"([^"]+)"\)\s*', statement)
                    if match and context in deleted:
                        deleted[context].add(match.group(1))
        elif ctype(cid) == "attributes":
            for action in settings.get("actions") or []:
                if action.get("action") == "delete":
                    deleted["span"].add(action.get("key"))
    problems = []
    for context, keys in deleted.items():
        missing = [key for key in CONTENT_KEYS if key not in keys]
        if missing:
            problems.append(f"traces pipeline: {missing} are not deleted in the {context} context")
    return problems


def structural_problems(config: dict[str, Any]) -> list[str]:
    return (
        check_references(config)
        + check_processor_order(config)
        + check_batch_size(config)
        + check_memory_limiter(config)
        + check_loopback_listeners(config)
        + check_persistent_queue(config)
    )


# --- the shipped files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", FULL_CONFIGS, ids=lambda p: p.name)
def test_config_is_structurally_sound(path: Path) -> None:
    assert structural_problems(load(path)) == []


@pytest.mark.parametrize("path", FULL_CONFIGS, ids=lambda p: p.name)
def test_config_has_no_literal_secrets(path: Path) -> None:
    assert check_no_literal_secrets(path) == []


def test_agent_forwards_to_loratrace_http_port() -> None:
    assert check_agent_exporter_targets_loratrace(load(AGENT)) == []


def test_agent_authenticates_to_loratrace_with_env_token() -> None:
    config = load(AGENT)
    assert check_auth(config, required_at=[f"exporters.{cid}" for cid in exporters_of_type(config, OTLPHTTP)]) == []


def test_agent_carries_traces_and_metrics() -> None:
    assert set(map(ctype, pipelines(load(AGENT)))) == {"traces", "metrics"}


def test_agent_drops_prompt_content_by_default() -> None:
    assert check_content_dropped(load(AGENT)) == []


def test_keep_content_overlay_keeps_content_and_a_sound_pipeline() -> None:
    merged = merge(load(AGENT), load(KEEP_CONTENT))
    assert check_content_dropped(merged) != []
    # Unused processors are allowed by the collector; everything else still holds.
    problems = [p for p in structural_problems(merged) if "defined but no pipeline uses it" not in p]
    assert problems == []
    assert merged["service"]["pipelines"]["metrics"] == load(AGENT)["service"]["pipelines"]["metrics"]


def test_load_balancer_routes_traces_by_trace_id() -> None:
    assert check_routing(load(LOAD_BALANCER)) == []


def test_load_balancer_backends_are_loratrace_grpc_collectors() -> None:
    assert check_load_balancer_backends(load(LOAD_BALANCER)) == []


def test_load_balancer_authenticates_both_ways_over_tls() -> None:
    config = load(LOAD_BALANCER)
    required = [f"exporters.{cid}.protocol.otlp" for cid in exporters_of_type(config, LOADBALANCING)]
    required += [f"receivers.otlp.protocols.{proto}" for proto in ("grpc", "http")]
    assert check_auth(config, required_at=required) == []
    assert check_grpc_auth_has_tls(config) == []


def test_docs_name_every_config_file_and_variable() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    files = sorted(CONFIG_DIR.rglob("*.yaml"))
    assert {AGENT, LOAD_BALANCER, KEEP_CONTENT} <= set(files)
    missing = [str(p.relative_to(REPO_ROOT)) for p in files if str(p.relative_to(REPO_ROOT)) not in docs]
    assert missing == []
    variables = set().union(*(env_vars(p) for p in files))
    assert TOKEN_ENV in variables
    assert sorted(v for v in variables if v not in docs) == []


# --- each check catches what it is for --------------------------------------------------------------------


def _mutate(path: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    config = copy.deepcopy(load(path))
    change(config)
    return config


def _agent_exporter(config: dict[str, Any]) -> dict[str, Any]:
    return next(iter(exporters_of_type(config, OTLPHTTP).values()))


def _lb_traces(config: dict[str, Any]) -> dict[str, Any]:
    return config["exporters"][config["service"]["pipelines"]["traces"]["exporters"][0]]


def _swap_batch_and_limiter(config: dict[str, Any]) -> None:
    procs = config["service"]["pipelines"]["traces"]["processors"]
    procs[0], procs[-1] = procs[-1], procs[0]


def _rename(config: dict[str, Any], kind: str, old: str, new: str) -> None:
    config[kind][new] = config[kind].pop(old)


MUTATIONS = [
    pytest.param(
        AGENT,
        check_processor_order,
        _swap_batch_and_limiter,
        "memory_limiter must be the first",
        id="batch-before-limiter",
    ),
    pytest.param(
        LOAD_BALANCER,
        check_processor_order,
        lambda c: c["service"]["pipelines"]["metrics"]["processors"].reverse(),
        "batch must be the last",
        id="lb-reversed",
    ),
    pytest.param(
        AGENT,
        check_references,
        lambda c: c["service"]["pipelines"]["traces"]["exporters"].append("otlp/elsewhere"),
        "not defined",
        id="undefined-exporter",
    ),
    pytest.param(
        AGENT,
        check_references,
        lambda c: c["processors"].update({"filter/unused": {}}),
        "defined but no pipeline uses it",
        id="unused-processor",
    ),
    pytest.param(
        LOAD_BALANCER,
        check_references,
        lambda c: c["service"]["extensions"].remove("health_check"),
        "not in service.extensions",
        id="extension-not-enabled",
    ),
    pytest.param(
        AGENT,
        check_batch_size,
        lambda c: c["processors"]["batch"].update(send_batch_size=8192),
        "send_batch_size 8192",
        id="batch-size",
    ),
    pytest.param(
        AGENT,
        check_memory_limiter,
        lambda c: c["processors"]["memory_limiter"].pop("limit_percentage"),
        "limit_mib or limit_percentage",
        id="limiter-without-limit",
    ),
    pytest.param(
        AGENT,
        check_loopback_listeners,
        lambda c: c["receivers"]["otlp"]["protocols"]["grpc"].update(
            endpoint="${env:OTELCOL_OTLP_GRPC_ENDPOINT:-0.0.0.0:4317}"
        ),
        "not on loopback",
        id="wildcard-default",
    ),
    pytest.param(
        LOAD_BALANCER,
        check_loopback_listeners,
        lambda c: c["extensions"]["health_check"].pop("endpoint"),
        "must be explicit",
        id="implicit-health-endpoint",
    ),
    pytest.param(
        AGENT,
        check_agent_exporter_targets_loratrace,
        lambda c: _agent_exporter(c).update(endpoint="${env:LORATRACE_HTTP_ENDPOINT:-https://loratrace:4317}"),
        "OTLP/HTTP port",
        id="agent-grpc-port",
    ),
    pytest.param(
        AGENT,
        check_agent_exporter_targets_loratrace,
        lambda c: _agent_exporter(c).update(traces_endpoint="https://loratrace:4318/v1/spans"),
        "/v1/traces",
        id="agent-wrong-path",
    ),
    pytest.param(
        AGENT,
        check_persistent_queue,
        lambda c: _agent_exporter(c)["sending_queue"].pop("storage"),
        "storage extension",
        id="in-memory-queue",
    ),
    pytest.param(
        AGENT,
        check_persistent_queue,
        lambda c: _rename(c, "extensions", "file_storage/queue", "file_storage/other"),
        "not a defined file_storage",
        id="queue-storage-undefined",
    ),
    pytest.param(
        LOAD_BALANCER,
        check_persistent_queue,
        lambda c: _lb_traces(c)["protocol"]["otlp"]["sending_queue"].update(enabled=True),
        "per-backend sending_queue",
        id="per-backend-queue",
    ),
    pytest.param(
        AGENT,
        lambda c: check_auth(c, required_at=[]),
        lambda c: c["extensions"]["bearertokenauth/loratrace"].update(token="s3cr3t-token-value"),
        "must be exactly",
        id="literal-token",
    ),
    pytest.param(
        AGENT,
        lambda c: check_auth(c, required_at=[]),
        lambda c: _agent_exporter(c)["auth"].update(authenticator="oauth2client"),
        "not a defined bearertokenauth",
        id="undefined-authenticator",
    ),
    pytest.param(
        AGENT,
        lambda c: check_auth(c, required_at=["exporters.otlphttp/loratrace"]),
        lambda c: _agent_exporter(c).pop("auth"),
        "no auth.authenticator",
        id="agent-without-auth",
    ),
    pytest.param(
        LOAD_BALANCER,
        check_grpc_auth_has_tls,
        lambda c: _lb_traces(c)["protocol"]["otlp"]["tls"].update(insecure=True),
        "tls.insecure=true",
        id="plaintext-grpc-token",
    ),
    pytest.param(
        LOAD_BALANCER,
        check_routing,
        lambda c: _lb_traces(c).update(routing_key="service"),
        "not traceID",
        id="route-by-service",
    ),
    pytest.param(
        LOAD_BALANCER,
        check_load_balancer_backends,
        lambda c: _lb_traces(c)["resolver"]["static"]["hostnames"].append("loratrace-4:4318"),
        "OTLP/gRPC port",
        id="backend-http-port",
    ),
    pytest.param(
        LOAD_BALANCER,
        check_load_balancer_backends,
        lambda c: _lb_traces(c)["resolver"]["static"].update(hostnames=["loratrace-1:4317"]),
        "a tier needs several",
        id="single-backend",
    ),
    pytest.param(
        AGENT,
        check_content_dropped,
        lambda c: c["processors"]["transform/drop_content"]["trace_statements"][1]["statements"].pop(0),
        "spanevent context",
        id="event-content-kept",
    ),
]


@pytest.mark.parametrize(("path", "check", "change", "expected"), MUTATIONS)
def test_check_catches_broken_config(
    path: Path,
    check: Callable[[dict[str, Any]], list[str]],
    change: Callable[[dict[str, Any]], None],
    expected: str,
) -> None:
    assert check(load(path)) == []
    problems = check(_mutate(path, change))
    assert any(expected in problem for problem in problems), problems


def test_secret_scan_catches_literal_token(tmp_path: Path) -> None:
    leaked = tmp_path / "leaked.yaml"
    leaked.write_text(AGENT.read_text(encoding="utf-8").replace("${env:LORATRACE_AUTH_TOKEN}", "abcdef0123456789"))
    assert any("literal" in problem for problem in check_no_literal_secrets(leaked))


def test_expand_and_merge_follow_collector_semantics() -> None:
    assert expand("${env:X:-127.0.0.1:4317}") == "127.0.0.1:4317"
    assert expand("${env:X:-5000}") == 5000
    assert expand("${env:X:-}") == ""
    assert expand("https://${env:HOST:-loratrace}:4318") == "https://loratrace:4318"
    assert merge({"a": {"b": [1, 2], "c": 1}}, {"a": {"b": [3]}}) == {"a": {"b": [3], "c": 1}}

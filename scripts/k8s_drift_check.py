#!/usr/bin/env python3
"""Checks that the rendered Kubernetes manifests still fit the binaries.

    k8s_drift_check.py [--live auto|require|off] [--live-overlay dev] [--suite services/suite.tsv]
                       rendered/dev.yaml rendered/prod.yaml

Part of `make k8s-check` (scripts/k8s-check.sh renders every overlay with
`kubectl kustomize` and passes the files here). For every CRM Deployment
(label app.kubernetes.io/part-of=crm) and each of its containers, against
the binary the image is built from (`crm-profiles:...` -> crm-profiles in
$CARGO_TARGET_DIR/debug, else ./target/debug; building it is `cargo build`'s
job, a missing binary is an error):

- every environment variable (env, and the keys of envFrom ConfigMaps) is one
  the binary reads: a `[env: ...]` line of its `--help`, or one of the few
  variables crm-kit reads directly (EXTERNAL_ENV, each checked against the
  kit's source);
- command/args, when set, are accepted by the binary;
- the server listens on 0.0.0.0 (CRM_LISTEN_ADDR) at the port the container
  declares (named `grpc` or `http` where it has such a name), the probes
  check and the Services target; the probes fit the port's protocol (`grpc`
  probes on a `grpc` port, `httpGet` with an absolute path, scheme HTTP, on
  an `http` port); URLs of other services (CRM_*_URL, and the `package=url`
  pairs of CRM_BACKENDS) name a Service port that exists;
- where the overlay has NetworkPolicies, each of those calls (and Ingress ->
  Service) is allowed by an egress rule of the caller and an ingress rule of
  the callee (pod and port; same-namespace podSelectors, and for the Ingress
  any rule from another namespace);
- an Ingress routes to a Service port that exists, and ingress-nginx's
  proxy-body-size equals the backend's CRM_MAX_BODY_BYTES and its
  proxy-read-timeout exceeds the backend's CRM_REQUEST_TIMEOUT_MS;
- every CRM container agrees on CRM_JWT_ISSUER and takes CRM_JWT_SECRET from
  the same Secret key (tokens the gateway accepts, the services accept);
- the init container, where there is one (services with a database), runs
  the migrations (CRM_MIGRATE_ONLY=true) with the owner's URL, and the server
  container never holds that URL;
- terminationGracePeriodSeconds covers preStop + CRM_SHUTDOWN_DRAIN_MS (for
  binaries that have a drain phase) + CRM_SHUTDOWN_GRACE_MS;
- the CRM Deployments are exactly the lines of services/suite.tsv (the list
  `make run` starts), each as its line says: Deployment and Service <name>
  running crm-<name> on its port (a `grpc` port for a service, `http` for a
  gateway); a migration init container and, where the overlay has
  CloudNativePG Clusters, a Cluster <name>-db creating its database, if and
  only if it has one; CRM_<NEED>_URL naming Service <need> on its port for
  each of its needs, and no CRM_<NAME>_URL of another line it does not need;
  a gateway's CRM_BACKENDS routing exactly the lines' proto packages, each to
  its line's Service and port.

Live part (--live auto, the default): when a Postgres for the services is
known (PROFILES_DATABASE_URL and friends in the environment, or the dev
cluster's .data/env written by `make db-up`) and answers, the Deployments of
one overlay (--live-overlay, default dev) are started as local processes with
exactly their rendered environment: secrets replaced by URLs of a throwaway
database per service (test_<svc>_k8s_<random>, created by the owner role as
the tests do, dropped afterwards; `dev-db.sh prune-tests` removes leftovers)
and throwaway keys, Service hosts rewritten to 127.0.0.1, listen ports moved
to free ports, the collector endpoint and the Postgres TLS settings
(CRM_DATABASE_SSLMODE, CRM_DATABASE_CA_FILE) dropped. Each init container must
exit 0; each server must become ready by its readinessProbe (grpc.health.v1
SERVING, or for HTTP servers such as the gateway: GET of the httpGet path,
e.g. /readyz, returns 200, i.e. every backend it was given answers SERVING)
and then answer every other httpGet probe path with 200; the gateway must
route an authenticated REST call to each backend (the `smoke` column of
services/suite.tsv, in its order) and answer
each Exact path that any overlay's Ingress sends to it (not 404); each must
exit 0 on SIGTERM within terminationGracePeriodSeconds minus its preStop
sleep. `--live require` fails instead of
skipping when no database answers; `--live off` skips the part.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent

# Variables crm-kit reads with std::env::var rather than through clap, so that
# `--help` does not list them. Each is checked to still occur in that file.
EXTERNAL_ENV = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": "shared/kit/src/telemetry.rs",
    "CRM_LOG": "shared/kit/src/telemetry.rs",
    "CRM_TRACE": "shared/kit/src/telemetry.rs",
}

# Slack between the services' own shutdown budget and SIGKILL, for the
# telemetry flush after the grace period.
SHUTDOWN_MARGIN_S = 2

# Environment variables whose value is a list of `key=url` pairs, each url a
# Service of the namespace (the gateway's backends).
URL_LIST_ENV = {"CRM_BACKENDS"}

# The suite's processes, one line each (see the file's header for the columns).
SUITE_FILE = ROOT / "services" / "suite.tsv"


class Failures:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, msg: str) -> None:
        self.items.append(f"{where}: {msg}")

    def __bool__(self) -> bool:
        return bool(self.items)


# --- services/suite.tsv -------------------------------------------------------------------


@dataclass
class SuiteEntry:
    name: str
    kind: str  # service | gateway
    port: int
    database: str | None
    protos: list[str]
    needs: list[str]
    smoke: str | None


def load_suite(path: Path) -> list[SuiteEntry]:
    """The lines of services/suite.tsv, validated as scripts/suite.sh validates them."""
    if not path.is_file():
        raise SystemExit(f"k8s-drift: {path} not found (the list of the services)")
    entries: list[SuiteEntry] = []
    ports: dict[int, str] = {}
    packages: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cols = line.split()
        if len(cols) != 7:
            raise SystemExit(f"k8s-drift: {path}:{n}: want 7 columns (name kind port database protos needs smoke), got: {line}")
        name, kind, port, db, protos, needs, smoke = (None if c == "-" else c for c in cols)

        def bad(msg: str) -> SystemExit:
            return SystemExit(f"k8s-drift: {path}:{n}: {name}: {msg}")

        if not re.fullmatch(r"[a-z][a-z0-9]*", name or ""):
            raise bad("name must match [a-z][a-z0-9]*")
        if any(e.name == name for e in entries):
            raise bad("listed twice")
        if kind not in ("service", "gateway"):
            raise bad(f"kind {kind!r} is neither service nor gateway")
        if not re.fullmatch(r"[1-9][0-9]{0,4}", port or "") or int(port) > 65535:
            raise bad(f"port {port!r} is not a TCP port")
        if int(port) in ports:
            raise bad(f"port {port} is {ports[int(port)]}'s too")
        ports[int(port)] = name
        if db and not re.fullmatch(r"[a-z][a-z0-9_]*", db):
            raise bad(f"database {db!r} must match [a-z][a-z0-9_]*")
        pkgs = protos.split(",") if protos else []
        for pkg in pkgs:
            if not re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+", pkg):
                raise bad(f"{pkg!r} is not a proto package")
            if pkg in packages:
                raise bad(f"proto package {pkg} is routed to {packages[pkg]} already")
            packages[pkg] = name
        need_list = needs.split(",") if needs else []
        for need in need_list:
            if not any(e.name == need and e.kind == "service" for e in entries):
                raise bad(f"needs {need!r}, which is not a service on an earlier line")
        if smoke and not smoke.startswith("/"):
            raise bad(f"smoke path {smoke!r} must start with /")
        if pkgs and not smoke:
            raise bad("the gateway routes to it (protos), so it needs a smoke path")
        if kind == "gateway" and (db or pkgs or need_list or smoke):
            raise bad("a gateway has no database, protos, needs or smoke path (its backends are the services' protos)")
        entries.append(SuiteEntry(name, kind, int(port), db, pkgs, need_list, smoke))
    if not entries:
        raise SystemExit(f"k8s-drift: {path} lists no service")
    return entries


def smoke_calls(suite: list[SuiteEntry]) -> dict[str, list[tuple[str, int]]]:
    """Live check, per gateway binary: REST calls (path, expected status) made with a
    token signed by the shared crm-jwt stand-in, one per backend in the suite's order,
    proving that the routes reach each backend through the rewritten CRM_BACKENDS and
    that gateway and services accept the same tokens."""
    calls = [(e.smoke, 200) for e in suite if e.smoke]
    return {f"crm-{e.name}": calls for e in suite if e.kind == "gateway"}


# --- the binaries ------------------------------------------------------------------------


def bin_dir() -> Path:
    target = os.environ.get("CARGO_TARGET_DIR") or str(ROOT / "target")
    path = Path(target)
    if not path.is_absolute():
        path = ROOT / path
    return path / "debug"


@dataclass
class Binary:
    name: str
    path: Path
    help_text: str
    envs: set[str]
    defaults: dict[str, str]

    @classmethod
    def load(cls, name: str) -> "Binary":
        path = bin_dir() / name
        if not path.is_file() or not os.access(path, os.X_OK):
            raise SystemExit(
                f"k8s-drift: {path} not found. The drift check runs the service binaries "
                f"(`{name} --help`); build them first with `cargo build --workspace --bins` "
                f"(CARGO_TARGET_DIR={os.environ.get('CARGO_TARGET_DIR', '<unset: ./target>')})."
            )
        out = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=30, env=clean_env())
        if out.returncode != 0:
            raise SystemExit(f"k8s-drift: `{path} --help` failed ({out.returncode}): {out.stderr.strip()}")
        text = out.stdout
        envs = set(re.findall(r"\[env: ([A-Z0-9_]+)", text))
        defaults = {}
        # clap's long help: `[env: NAME=...]` then `[default: VALUE]` in the same option block.
        for block in re.split(r"\n\s*\n", text):
            env = re.search(r"\[env: ([A-Z0-9_]+)", block)
            default = re.search(r"\[default: ([^\]]*)\]", block)
            if env and default:
                defaults[env.group(1)] = default.group(1)
        if not envs:
            raise SystemExit(f"k8s-drift: `{path} --help` lists no [env: ...] lines; has the help format changed?")
        return cls(name, path, text, envs, defaults)

    def accepts(self, args: list[str]) -> tuple[bool, str]:
        """Whether clap accepts these arguments (parsed up to `--help`, nothing runs)."""
        out = subprocess.run([str(self.path), *args, "--help"], capture_output=True, text=True, timeout=30, env=clean_env())
        return out.returncode == 0, out.stderr.strip()


def clean_env() -> dict[str, str]:
    """A pod-like environment: nothing of the caller's but PATH."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def check_external_env(failures: Failures) -> None:
    for name, rel in EXTERNAL_ENV.items():
        src = ROOT / rel
        if not src.is_file() or f'"{name}"' not in src.read_text(encoding="utf-8"):
            failures.add("EXTERNAL_ENV", f"{name} is no longer read in {rel}; update scripts/k8s_drift_check.py")


# --- the rendered manifests ---------------------------------------------------------------


@dataclass
class Rendered:
    path: Path
    docs: list[dict]
    configmaps: dict[str, dict] = field(default_factory=dict)
    services: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "Rendered":
        with path.open(encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        r = cls(path, docs)
        for d in docs:
            if d.get("kind") == "ConfigMap":
                r.configmaps[d["metadata"]["name"]] = d.get("data") or {}
            elif d.get("kind") == "Service":
                r.services[d["metadata"]["name"]] = d
        return r

    def crm_deployments(self) -> list[dict]:
        return [
            d
            for d in self.docs
            if d.get("kind") == "Deployment"
            and (d["metadata"].get("labels") or {}).get("app.kubernetes.io/part-of") == "crm"
        ]


@dataclass
class EnvVar:
    name: str
    value: str | None = None  # literal or resolved from a ConfigMap
    secret: tuple[str, str] | None = None  # (secret name, key)


def container_env(rendered: Rendered, container: dict, where: str, failures: Failures) -> dict[str, EnvVar]:
    """The container's environment in Kubernetes' precedence: envFrom in order, then env."""
    result: dict[str, EnvVar] = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            ref = source["configMapRef"]
            data = rendered.configmaps.get(ref["name"])
            if data is None:
                if not ref.get("optional"):
                    failures.add(where, f"envFrom ConfigMap {ref['name']} is not in the rendered output")
                continue
            prefix = source.get("prefix", "")
            for k, v in data.items():
                result[prefix + k] = EnvVar(prefix + k, value=str(v))
        else:
            failures.add(where, f"envFrom {list(source)} cannot be checked (its keys are not in the manifests); use env with secretKeyRef")
    for e in container.get("env") or []:
        name = e["name"]
        if "value" in e:
            result[name] = EnvVar(name, value=str(e["value"]))
        elif "valueFrom" in e:
            vf = e["valueFrom"]
            if "secretKeyRef" in vf:
                result[name] = EnvVar(name, secret=(vf["secretKeyRef"]["name"], vf["secretKeyRef"]["key"]))
            elif "configMapKeyRef" in vf:
                ref = vf["configMapKeyRef"]
                data = rendered.configmaps.get(ref["name"])
                if data is None or ref["key"] not in data:
                    if not ref.get("optional"):
                        failures.add(where, f"{name}: ConfigMap key {ref['name']}/{ref['key']} is not in the rendered output")
                    continue
                result[name] = EnvVar(name, value=str(data[ref["key"]]))
            else:
                # fieldRef/resourceFieldRef: the name is still checked below.
                result[name] = EnvVar(name)
        else:
            result[name] = EnvVar(name, value="")
    return result


def binary_of(image: str) -> str:
    last = image.split("/")[-1]
    return re.split(r"[:@]", last, maxsplit=1)[0]


def service_urls(name: str, value: str | None) -> list[str]:
    """The URLs of other services in one variable: CRM_*_URL, or each url of CRM_BACKENDS."""
    if not value:
        return []
    if name in URL_LIST_ENV:
        return [pair.partition("=")[2].strip() for pair in value.split(",") if "=" in pair]
    if name.startswith("CRM_") and name.endswith("_URL"):
        return [value]
    return []


def rewrite_urls(name: str, value: str, rewrite) -> str:
    """`value` with each service URL replaced by rewrite(url) (None: unchanged)."""
    if name in URL_LIST_ENV:
        pairs = []
        for pair in value.split(","):
            key, sep, url = pair.partition("=")
            new = rewrite(url.strip()) if sep else None
            pairs.append(f"{key}={new}" if new else pair)
        return ",".join(pairs)
    if name.startswith("CRM_") and name.endswith("_URL"):
        return rewrite(value) or value
    return value


def resolve_port(container: dict, port) -> int | None:
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    return None


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def ms_setting(env: dict[str, EnvVar], binary: Binary, name: str) -> int | None:
    raw = env[name].value if name in env else binary.defaults.get(name)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


# --- static checks -----------------------------------------------------------------------


@dataclass
class PlannedContainer:
    deployment: str
    container: str
    init: bool
    binary: Binary
    env: dict[str, EnvVar]
    args: list[str]
    listen_port: int | None
    grace_s: int
    pre_stop_s: int = 0
    probes: dict = field(default_factory=dict)  # startupProbe/readinessProbe/livenessProbe
    pod_labels: dict = field(default_factory=dict)


def check_rendered(rendered: Rendered, binaries: dict[str, Binary], failures: Failures) -> list[PlannedContainer]:
    planned: list[PlannedContainer] = []
    deployments = rendered.crm_deployments()
    if not deployments:
        failures.add(str(rendered.path), "no Deployment labelled app.kubernetes.io/part-of=crm")
    for dep in deployments:
        dname = dep["metadata"]["name"]
        pod = dep["spec"]["template"]["spec"]
        pod_labels = dep["spec"]["template"]["metadata"].get("labels") or {}
        grace = pod.get("terminationGracePeriodSeconds", 30)
        containers = [(c, True) for c in pod.get("initContainers") or []] + [(c, False) for c in pod["containers"]]
        for c, is_init in containers:
            where = f"{rendered.path.name}: Deployment/{dname} {'initContainer' if is_init else 'container'} {c['name']}"
            bname = binary_of(c["image"])
            if not bname.startswith("crm-"):
                failures.add(where, f"image {c['image']} is not a CRM service image")
                continue
            if bname not in binaries:
                binaries[bname] = Binary.load(bname)
            binary = binaries[bname]

            command = c.get("command")
            # The Dockerfile installs every service's binary as /usr/local/bin/crm-service.
            if command and Path(command[0]).name not in (bname, "crm-service"):
                failures.add(where, f"command {command} does not run {bname}")
            args = list((command or [])[1:]) + list(c.get("args") or [])
            if args:
                ok, err = binary.accepts(args)
                if not ok:
                    failures.add(where, f"{bname} rejects args {args}: {err}")

            env = container_env(rendered, c, where, failures)
            for name in sorted(env):
                if name not in binary.envs and name not in EXTERNAL_ENV:
                    failures.add(where, f"{name} is not read by {bname} (not in `{bname} --help`)")

            listen_port = None
            if is_init:
                if env.get("CRM_MIGRATE_ONLY", EnvVar("")).value != "true":
                    failures.add(where, "a CRM init container must be the migration step (CRM_MIGRATE_ONLY=true)")
                if "CRM_MIGRATION_DATABASE_URL" not in env:
                    failures.add(where, "the migration step needs CRM_MIGRATION_DATABASE_URL (the schema owner)")
            else:
                listen_port = check_server(rendered, dep, c, env, binary, where, failures)
                if "CRM_MIGRATION_DATABASE_URL" in env:
                    failures.add(where, "the server must not hold the owner's URL: migrations belong to the init container")
                if "CRM_MIGRATE_ONLY" in env:
                    failures.add(where, "CRM_MIGRATE_ONLY on the server container would stop it from serving")
                pre_stop = ((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)
                # Binaries without a drain phase (the gateway) do not list it in --help.
                drain = ms_setting(env, binary, "CRM_SHUTDOWN_DRAIN_MS") if "CRM_SHUTDOWN_DRAIN_MS" in binary.envs else 0
                grace_ms = ms_setting(env, binary, "CRM_SHUTDOWN_GRACE_MS")
                if drain is None or grace_ms is None:
                    failures.add(where, "CRM_SHUTDOWN_DRAIN_MS / CRM_SHUTDOWN_GRACE_MS not known (not set, no default in --help)")
                else:
                    need = pre_stop + (drain + grace_ms + 999) // 1000 + SHUTDOWN_MARGIN_S
                    if grace < need:
                        failures.add(
                            where,
                            f"terminationGracePeriodSeconds {grace} < preStop {pre_stop}s + drain {drain}ms + "
                            f"grace {grace_ms}ms + {SHUTDOWN_MARGIN_S}s margin = {need}s",
                        )
            pre_stop_s = 0 if is_init else ((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)
            probes = {} if is_init else {k: c[k] for k in ("startupProbe", "readinessProbe", "livenessProbe") if c.get(k)}
            planned.append(PlannedContainer(dname, c["name"], is_init, binary, env, args, listen_port, grace,
                                            pre_stop_s, probes, pod_labels))

        # Services that select these pods must target the listen port.
        server_ports = [p.listen_port for p in planned if p.deployment == dname and not p.init and p.listen_port]
        for sname, svc in rendered.services.items():
            if not selects(svc["spec"].get("selector") or {}, pod_labels):
                continue
            for sp in svc["spec"].get("ports") or []:
                target = sp.get("targetPort", sp["port"])
                resolved = None
                for c in pod["containers"]:
                    resolved = resolve_port(c, target)
                    if resolved is not None:
                        break
                if resolved is None or resolved not in server_ports:
                    failures.add(
                        f"{rendered.path.name}: Service/{sname}",
                        f"port {sp.get('name')} targets {target!r} = {resolved}, but {dname} listens on {server_ports}",
                    )
    check_urls(rendered, planned, failures)
    check_jwt(rendered, planned, failures)
    check_ingresses(rendered, planned, failures)
    check_network_policies(rendered, planned, failures)
    return planned


def check_server(rendered, dep, c, env, binary, where, failures) -> int | None:
    addr = env.get("CRM_LISTEN_ADDR")
    value = addr.value if addr else binary.defaults.get("CRM_LISTEN_ADDR")
    m = re.fullmatch(r"(.+):(\d+)", value or "")
    if not m:
        failures.add(where, f"CRM_LISTEN_ADDR {value!r} is not host:port")
        return None
    host, port = m.group(1), int(m.group(2))
    if host not in ("0.0.0.0", "[::]"):
        failures.add(where, f"CRM_LISTEN_ADDR {value}: a pod must listen on 0.0.0.0, not {host}")
    declared = c.get("ports") or []
    if not any(p["containerPort"] == port for p in declared):
        failures.add(where, f"no container port {port} (CRM_LISTEN_ADDR) among {[p['containerPort'] for p in declared]}")
    for p in declared:
        if p.get("name") in ("grpc", "http") and p["containerPort"] != port:
            failures.add(where, f"container port `{p['name']}` is {p['containerPort']}, but the server listens on {port}")
    # The listen port's protocol, by its name: what the probes must speak.
    protocol = next((p.get("name") for p in declared if p["containerPort"] == port and p.get("name") in ("grpc", "http")), None)
    want = {"grpc": "grpc", "http": "httpGet"}.get(protocol)
    for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = c.get(probe_name)
        if not probe:
            failures.add(where, f"no {probe_name}")
            continue
        for kind in ("grpc", "tcpSocket", "httpGet", "exec"):
            if kind not in probe:
                continue
            if want and kind != want:
                failures.add(where, f"{probe_name} is {kind}, but the listen port is `{protocol}`: use {want}")
            if kind == "exec":
                continue
            p = resolve_port(c, probe[kind].get("port"))
            if p != port:
                failures.add(where, f"{probe_name} {kind} port {probe[kind].get('port')!r} = {p} != listen port {port}")
            if kind == "httpGet":
                path = probe[kind].get("path", "")
                if not path.startswith("/"):
                    failures.add(where, f"{probe_name} httpGet path {path!r} is not an absolute path")
                if probe[kind].get("scheme", "HTTP") != "HTTP":
                    failures.add(where, f"{probe_name} httpGet scheme {probe[kind]['scheme']}: {binary.name} serves plain HTTP (TLS ends at the Ingress)")
    return port


def check_urls(rendered: Rendered, planned: list[PlannedContainer], failures: Failures) -> None:
    """Service URLs (CRM_*_URL, CRM_BACKENDS) of the same namespace must name one of its ports."""
    for pc in planned:
        for name, var in pc.env.items():
            urls = service_urls(name, var.value)
            if name in URL_LIST_ENV and var.value and not urls:
                failures.add(f"{rendered.path.name}: Deployment/{pc.deployment} {pc.container}",
                             f"{name}={var.value!r} has no package=url pair")
            for value in urls:
                url = urlsplit(value)
                host = (url.hostname or "").split(".")[0]
                if host not in rendered.services:
                    continue
                ports = [p["port"] for p in rendered.services[host]["spec"].get("ports") or []]
                if url.port not in ports:
                    failures.add(
                        f"{rendered.path.name}: Deployment/{pc.deployment} {pc.container}",
                        f"{name}: {value}: Service {host} has ports {ports}",
                    )


def service_target(rendered: Rendered, sname: str, port) -> tuple[dict, int] | None:
    """(Deployment, container port) behind port `port` (number or name) of Service `sname`."""
    svc = rendered.services.get(sname)
    if not svc:
        return None
    for sp in svc["spec"].get("ports") or []:
        if port not in (sp["port"], sp.get("name")):
            continue
        for dep in rendered.crm_deployments():
            pod = dep["spec"]["template"]
            if selects(svc["spec"].get("selector") or {}, pod["metadata"].get("labels") or {}):
                target = sp.get("targetPort", sp["port"])
                for c in pod["spec"]["containers"]:
                    resolved = resolve_port(c, target)
                    if resolved is not None:
                        return dep, resolved
    return None


def calls(rendered: Rendered, planned: list[PlannedContainer]):
    """(caller PlannedContainer, env name, callee Deployment, callee container port) per service URL."""
    for pc in planned:
        for name, var in pc.env.items():
            for value in service_urls(name, var.value):
                url = urlsplit(value)
                hit = service_target(rendered, (url.hostname or "").split(".")[0], url.port)
                if hit:
                    yield pc, name, hit[0], hit[1]


def check_jwt(rendered: Rendered, planned: list[PlannedContainer], failures: Failures) -> None:
    """All CRM containers validate the same tokens: one issuer, one secret."""
    servers = [pc for pc in planned if not pc.init]
    issuers = {pc.deployment: (pc.env["CRM_JWT_ISSUER"].value if "CRM_JWT_ISSUER" in pc.env
                               else pc.binary.defaults.get("CRM_JWT_ISSUER")) for pc in servers}
    if len(set(issuers.values())) > 1:
        failures.add(rendered.path.name, f"CRM_JWT_ISSUER differs between Deployments: {issuers}")
    refs = {pc.deployment: pc.env["CRM_JWT_SECRET"].secret for pc in servers
            if "CRM_JWT_SECRET" in pc.env and "CRM_JWT_PUBLIC_KEY_FILE" not in pc.env}
    if len(set(refs.values())) > 1:
        failures.add(rendered.path.name, f"CRM_JWT_SECRET comes from different Secrets: {refs}")


def nginx_size(text: str) -> int | None:
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)\s*", str(text))
    if not m:
        return None
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2).lower()]


def check_ingresses(rendered: Rendered, planned: list[PlannedContainer], failures: Failures) -> None:
    """Each Ingress backend is a Service port; ingress-nginx limits fit the backend's settings."""
    servers = {pc.deployment: pc for pc in planned if not pc.init}
    for ing in (d for d in rendered.docs if d.get("kind") == "Ingress"):
        where = f"{rendered.path.name}: Ingress/{ing['metadata']['name']}"
        annotations = ing["metadata"].get("annotations") or {}
        nginx = ing["spec"].get("ingressClassName") == "nginx"
        tls_hosts = {h for t in ing["spec"].get("tls") or [] for h in t.get("hosts") or []}
        for rule in ing["spec"].get("rules") or []:
            if rule.get("host") and rule["host"] not in tls_hosts:
                failures.add(where, f"host {rule['host']} has no tls entry (it would be served over plain HTTP)")
            for path in (rule.get("http") or {}).get("paths") or []:
                svc = path["backend"].get("service") or {}
                port = svc.get("port", {}).get("name") or svc.get("port", {}).get("number")
                hit = service_target(rendered, svc.get("name"), port)
                if not hit:
                    failures.add(where, f"{path.get('path')}: backend {svc.get('name')}:{port} is no port of a CRM Service")
                    continue
                pc = servers.get(hit[0]["metadata"]["name"])
                if not pc or not nginx:
                    continue
                limit = ms_setting(pc.env, pc.binary, "CRM_MAX_BODY_BYTES")
                size = nginx_size(annotations.get("nginx.ingress.kubernetes.io/proxy-body-size", "1m"))
                if limit is not None and size != limit:
                    failures.add(where, f"proxy-body-size {size} bytes != {pc.deployment}'s CRM_MAX_BODY_BYTES {limit}")
                timeout_ms = ms_setting(pc.env, pc.binary, "CRM_REQUEST_TIMEOUT_MS")
                read_s = annotations.get("nginx.ingress.kubernetes.io/proxy-read-timeout", "60")
                if timeout_ms is not None and (not str(read_s).isdigit() or int(read_s) * 1000 <= timeout_ms):
                    failures.add(where, f"proxy-read-timeout {read_s}s must exceed {pc.deployment}'s CRM_REQUEST_TIMEOUT_MS {timeout_ms}")


def policy_allows(rendered: Rendered, direction: str, pod_labels: dict, peer_labels: dict | None, port: int) -> bool:
    """Whether a NetworkPolicy of `direction` (Ingress/Egress) selecting pod_labels lets traffic
    to/from a pod with peer_labels (None: a pod of another namespace) through on `port`."""
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for pol in (d for d in rendered.docs if d.get("kind") == "NetworkPolicy"):
        spec = pol["spec"]
        if direction not in spec.get("policyTypes", ["Ingress"]):
            continue
        sel = spec.get("podSelector") or {}
        if sel.get("matchExpressions") or not all(pod_labels.get(k) == v for k, v in (sel.get("matchLabels") or {}).items()):
            continue
        for rule in spec.get(key) or []:
            ports = rule.get("ports")
            if ports and not any(p.get("port") == port for p in ports):
                continue
            peers = rule.get(peers_key)
            if not peers:
                return True
            for peer in peers:
                if peer_labels is None:
                    if "namespaceSelector" in peer:
                        return True
                    continue
                if "namespaceSelector" in peer or "ipBlock" in peer or "podSelector" not in peer:
                    continue
                ps = peer["podSelector"] or {}
                if not ps.get("matchExpressions") and all(peer_labels.get(k) == v for k, v in (ps.get("matchLabels") or {}).items()):
                    return True
    return False


def check_network_policies(rendered: Rendered, planned: list[PlannedContainer], failures: Failures) -> None:
    """Where the overlay has NetworkPolicies, every call the settings imply must be allowed both ways."""
    if not any(d.get("kind") == "NetworkPolicy" for d in rendered.docs):
        return
    for pc, name, callee, port in calls(rendered, planned):
        callee_labels = callee["spec"]["template"]["metadata"].get("labels") or {}
        where = f"{rendered.path.name}: {pc.deployment} -> {callee['metadata']['name']}:{port} ({name})"
        if not policy_allows(rendered, "Egress", pc.pod_labels, callee_labels, port):
            failures.add(where, f"no NetworkPolicy egress rule of {pc.deployment} allows it")
        if not policy_allows(rendered, "Ingress", callee_labels, pc.pod_labels, port):
            failures.add(where, f"no NetworkPolicy ingress rule of {callee['metadata']['name']} allows it")
    for ing in (d for d in rendered.docs if d.get("kind") == "Ingress"):
        for rule in ing["spec"].get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                svc = path["backend"].get("service") or {}
                hit = service_target(rendered, svc.get("name"), svc.get("port", {}).get("name") or svc.get("port", {}).get("number"))
                if hit and not policy_allows(rendered, "Ingress", hit[0]["spec"]["template"]["metadata"].get("labels") or {}, None, hit[1]):
                    failures.add(f"{rendered.path.name}: Ingress/{ing['metadata']['name']} -> {hit[0]['metadata']['name']}:{hit[1]}",
                                 "no NetworkPolicy admits the ingress controller's namespace")


def url_target(value: str) -> tuple[str, int | None]:
    """(Service name, port) of an in-namespace URL such as http://profiles:50051."""
    url = urlsplit(value)
    return (url.hostname or "").split(".")[0], url.port


def check_suite(rendered: Rendered, planned: list[PlannedContainer], suite: list[SuiteEntry], failures: Failures) -> None:
    """The overlay runs exactly the lines of services/suite.tsv, each as its line describes it."""
    by_name = {e.name: e for e in suite}
    deployments = {d["metadata"]["name"]: d for d in rendered.crm_deployments()}
    for name in sorted(by_name.keys() - deployments.keys()):
        failures.add(rendered.path.name, f"no CRM Deployment {name}, which services/suite.tsv lists "
                                         f"(is k8s/base/{name} among the resources of k8s/base/kustomization.yaml?)")
    for name in sorted(deployments.keys() - by_name.keys()):
        failures.add(f"{rendered.path.name}: Deployment/{name}", "not in services/suite.tsv (add its line there)")
    servers = {pc.deployment: pc for pc in planned if not pc.init}
    migrating = {pc.deployment for pc in planned if pc.init}
    clusters = {d["metadata"]["name"]: d for d in rendered.docs
                if d.get("kind") == "Cluster" and str(d.get("apiVersion", "")).startswith("postgresql.cnpg.io/")}
    packages = {pkg: e for e in suite for pkg in e.protos}
    for e in suite:
        pc = servers.get(e.name)
        if pc is None:
            continue
        where = f"{rendered.path.name}: Deployment/{e.name} container {pc.container}"
        if pc.binary.name != f"crm-{e.name}":
            failures.add(where, f"runs {pc.binary.name}, but services/suite.tsv says crm-{e.name}")
        if pc.listen_port != e.port:
            failures.add(where, f"listens on {pc.listen_port}, but services/suite.tsv says port {e.port}")
        container = next((c for c in deployments[e.name]["spec"]["template"]["spec"]["containers"] if c["name"] == pc.container), {})
        protocol = next((p.get("name") for p in container.get("ports") or [] if p["containerPort"] == pc.listen_port), None)
        want = "http" if e.kind == "gateway" else "grpc"
        if protocol != want:
            failures.add(where, f"the listen port is named {protocol!r}, but a {e.kind} of services/suite.tsv serves `{want}`")
        hit = service_target(rendered, e.name, e.port)
        if not hit or hit[0]["metadata"]["name"] != e.name:
            failures.add(f"{rendered.path.name}: Service/{e.name}",
                         f"no port {e.port} sending to Deployment {e.name} (services/suite.tsv: its URLs are http://{e.name}:{e.port})")
        if e.database and e.name not in migrating:
            failures.add(where, f"services/suite.tsv gives it database {e.database}, but it has no migration init container")
        if not e.database and e.name in migrating:
            failures.add(where, "it has a migration init container, but services/suite.tsv gives it no database")
        if e.database and clusters:
            cluster = clusters.get(f"{e.name}-db")
            created = (((cluster or {}).get("spec") or {}).get("bootstrap") or {}).get("initdb", {}).get("database")
            if cluster is None:
                failures.add(rendered.path.name, f"no CloudNativePG Cluster {e.name}-db for {e.name}'s database {e.database} "
                                                 "(k8s/components/postgres)")
            elif created != e.database:
                failures.add(f"{rendered.path.name}: Cluster/{e.name}-db",
                             f"creates database {created!r}, but services/suite.tsv says {e.database}")
        for need in e.needs:
            var = f"CRM_{need.upper()}_URL"
            value = pc.env[var].value if var in pc.env else None
            if not value:
                failures.add(where, f"{var} is not set, but services/suite.tsv says {e.name} needs {need}")
            elif url_target(value) != (need, by_name[need].port):
                failures.add(where, f"{var}={value}: want Service {need} port {by_name[need].port} (services/suite.tsv)")
        for var in sorted(pc.env):
            m = re.fullmatch(r"CRM_([A-Z0-9]+)_URL", var)
            other = m.group(1).lower() if m else None
            if other in by_name and other not in e.needs:
                failures.add(where, f"{var} is set, but services/suite.tsv does not list {other} among {e.name}'s needs")
        if e.kind == "gateway":
            value = pc.env["CRM_BACKENDS"].value if "CRM_BACKENDS" in pc.env else None
            if not value:
                failures.add(where, "CRM_BACKENDS is not set (want the proto packages of services/suite.tsv)")
                continue
            routed = {}
            for pair in value.split(","):
                pkg, _, url = pair.partition("=")
                routed[pkg.strip()] = url.strip()
            for pkg, owner in packages.items():
                if pkg not in routed:
                    failures.add(where, f"CRM_BACKENDS does not route {pkg} ({owner.name} in services/suite.tsv)")
                elif url_target(routed[pkg]) != (owner.name, owner.port):
                    failures.add(where, f"CRM_BACKENDS routes {pkg} to {routed[pkg]}: want Service {owner.name} "
                                        f"port {owner.port} (services/suite.tsv)")
            for pkg in sorted(routed.keys() - packages.keys()):
                failures.add(where, f"CRM_BACKENDS routes {pkg}, which no line of services/suite.tsv lists")


# --- live check --------------------------------------------------------------------------


def database_env() -> dict[str, str]:
    """<SERVICE>_DATABASE_URL / _MIGRATION_DATABASE_URL from the environment or .data/env."""
    found = {k: v for k, v in os.environ.items() if re.fullmatch(r"[A-Z]+_(MIGRATION_)?DATABASE_URL", k)}
    env_file = ROOT / ".data" / "env"
    if not found and env_file.is_file():
        for line in env_file.read_text(encoding="utf-8").splitlines():
            m = re.fullmatch(r"\s*(?:export\s+)?([A-Z]+_(?:MIGRATION_)?DATABASE_URL)=(\S+)\s*", line)
            if m:
                found[m.group(1)] = m.group(2).strip("'\"")
    return found


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` instead (query string kept)."""
    base, sep, query = url.partition("?")
    return f"{base[: base.rfind('/')]}/{name}{sep}{query}"


def psql(owner_url: str, sql: str) -> None:
    exe = shutil.which("psql") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"), reverse=True)), None)
    if not exe:
        raise LookupError("psql not found (Debian package postgresql-client): needed to create the throwaway databases")
    out = subprocess.run([str(exe), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", owner_url, "-c", sql],
                         capture_output=True, text=True, timeout=60, env={**clean_env(), "PGCONNECT_TIMEOUT": "5"})
    if out.returncode != 0:
        raise LookupError(f"psql as the owner role failed: {out.stderr.strip()}")


class ThrowawayDatabases:
    """One fresh database per service, owned by its owner role, dropped on exit."""

    def __init__(self, db: dict[str, str]) -> None:
        self.db = db
        self.created: list[tuple[str, str]] = []  # (owner base url, name)
        self.urls: dict[str, str] = {}

    def urls_for(self, svc: str) -> tuple[str, str]:
        up = svc.upper()
        if up not in self.urls:
            owner = self.db.get(f"{up}_MIGRATION_DATABASE_URL")
            login = self.db.get(f"{up}_DATABASE_URL")
            if not owner or not login:
                raise LookupError(f"{up}_DATABASE_URL and {up}_MIGRATION_DATABASE_URL must both be set (or in .data/env)")
            name = f"test_{svc}_k8s_{secrets.token_hex(6)}"
            psql(owner, f'CREATE DATABASE "{name}"')
            self.created.append((owner, name))
            self.urls[up] = name
        name = self.urls[up]
        return (with_database(self.db[f"{up}_DATABASE_URL"], name),
                with_database(self.db[f"{up}_MIGRATION_DATABASE_URL"], name))

    def drop_all(self) -> None:
        for owner, name in self.created:
            try:
                psql(owner, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except LookupError as e:
                print(f"k8s-drift: could not drop {name}: {e}", file=sys.stderr)


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SecretStandIns:
    """Local values for the Secrets the manifests reference; an unknown one is an error."""

    def __init__(self, databases: ThrowawayDatabases) -> None:
        self.databases = databases
        self.jwt = os.environ.get("CRM_JWT_SECRET") or secrets.token_hex(32)
        self.random: dict[tuple[str, str], str] = {}

    def value(self, secret: str, key: str) -> str:
        if m := re.fullmatch(r"([a-z]+)-db-(login|app)", secret):
            if key != "uri":
                raise LookupError(f"Secret {secret}: only key `uri` has a local stand-in, not {key}")
            login, owner = self.databases.urls_for(m.group(1))
            return login if m.group(2) == "login" else owner
        if (secret, key) == ("crm-jwt", "secret"):
            return self.jwt
        if secret.endswith("-page-token") and key == "secret":
            return self.random.setdefault((secret, key), secrets.token_hex(32))
        # CRM_CREDENTIALS_KEY (providers' credentials, webhooks' secrets at rest; any length).
        if secret.endswith("-credentials") and key == "key":
            return self.random.setdefault((secret, key), secrets.token_hex(32))
        raise LookupError(f"no local stand-in for Secret {secret} key {key}: add one to SecretStandIns")


def process_env(pc: PlannedContainer, stand_ins: SecretStandIns, local_ports: dict[str, int], service_ports: dict[str, dict[int, str]]) -> dict[str, str]:
    env = clean_env()
    for name, var in pc.env.items():
        if name == "OTEL_EXPORTER_OTLP_ENDPOINT":
            continue  # no collector here; the services then export nothing
        if name in ("CRM_DATABASE_SSLMODE", "CRM_DATABASE_CA_FILE"):
            continue  # the throwaway databases are local, without TLS (the operator's CA is not here)
        if var.secret:
            env[name] = stand_ins.value(*var.secret)
        elif var.value is not None:
            env[name] = var.value
    if not pc.init and pc.listen_port:
        env["CRM_LISTEN_ADDR"] = f"127.0.0.1:{local_ports[pc.deployment]}"
    def local(value: str) -> str | None:
        url = urlsplit(value)
        target = service_ports.get((url.hostname or "").split(".")[0], {}).get(url.port)
        return f"{url.scheme}://127.0.0.1:{local_ports[target]}{url.path}" if target else None

    for name, value in list(env.items()):
        env[name] = rewrite_urls(name, value, local)
    return env


def grpc_serving(port: int) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
        except grpc.RpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING


def http_get(port: int, path: str, token: str | None = None) -> tuple[int | None, str]:
    """(status, body) of GET http://127.0.0.1:port/path; (None, error) when nothing answers."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request("GET", path, headers={"authorization": f"Bearer {token}"} if token else {})
        resp = conn.getresponse()
        return resp.status, resp.read(2000).decode("utf-8", "replace")
    except OSError as e:
        return None, str(e)
    finally:
        conn.close()


def is_ready(pc: PlannedContainer, port: int) -> bool:
    """The readinessProbe's verdict, run locally: gRPC health or HTTP 200."""
    probe = pc.probes.get("readinessProbe") or {}
    if "httpGet" in probe:
        return http_get(port, probe["httpGet"].get("path", "/"))[0] == 200
    return grpc_serving(port)


def hs256_token(secret: str, issuer: str) -> str:
    """An admin token as crm-dev-token mints it (HS256, audience crm, a fresh tenant)."""
    import base64
    import hashlib
    import hmac
    import json
    import uuid

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    claims = {"sub": "k8s-drift-check", "tenant": str(uuid.uuid4()), "roles": ["admin"],
              "exp": int(time.time()) + 600, "aud": "crm", "iss": issuer}
    signing = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing}.{b64(hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest())}"


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def ingress_exact_paths(all_rendered: list[Rendered]) -> dict[str, set[str]]:
    """Deployment name -> the Exact paths some overlay's Ingress sends to it (on any CRM Service port)."""
    out: dict[str, set[str]] = {}
    for rendered in all_rendered:
        for ing in (d for d in rendered.docs if d.get("kind") == "Ingress"):
            for rule in ing["spec"].get("rules") or []:
                for path in (rule.get("http") or {}).get("paths") or []:
                    svc = path["backend"].get("service") or {}
                    hit = service_target(rendered, svc.get("name"), svc.get("port", {}).get("name") or svc.get("port", {}).get("number"))
                    if hit and path.get("pathType") == "Exact":
                        out.setdefault(hit[0]["metadata"]["name"], set()).add(path["path"])
    return out


def live_check(rendered: Rendered, planned: list[PlannedContainer], mode: str, failures: Failures,
               suite: list[SuiteEntry], published: dict[str, set[str]] | None = None) -> None:
    db = database_env()
    urls = [v for k, v in db.items() if k.endswith("_DATABASE_URL")]
    if not urls or not all(reachable(u) for u in urls):
        msg = ("no Postgres known (set PROFILES_DATABASE_URL etc. or run `make db-up`)" if not urls
               else "the Postgres in " + ("the environment" if os.environ.get("PROFILES_DATABASE_URL") else ".data/env")
               + " does not answer (`make db-up` starts the dev cluster)")
        if mode == "require":
            failures.add("live", msg)
        else:
            print(f"k8s-drift: live check skipped: {msg}")
        return

    databases = ThrowawayDatabases(db)
    stand_ins = SecretStandIns(databases)
    # In the order of services/suite.tsv (which check_suite has matched with the Deployments).
    rank = {e.name: i for i, e in enumerate(suite)}
    deployments = sorted(dict.fromkeys(p.deployment for p in planned), key=lambda d: rank.get(d, len(rank)))
    smoke_by_binary = smoke_calls(suite)
    local_ports = {d: free_port() for d in deployments}
    # Service name -> {service port -> deployment}, to rewrite CRM_*_URL.
    service_ports: dict[str, dict[int, str]] = {}
    for sname, svc in rendered.services.items():
        for dep in rendered.crm_deployments():
            if selects(svc["spec"].get("selector") or {}, dep["spec"]["template"]["metadata"].get("labels") or {}):
                service_ports[sname] = {p["port"]: dep["metadata"]["name"] for p in svc["spec"].get("ports") or []}

    # Start a Deployment after the ones its URLs point at (profiles before tickets).
    def deps_of(d: str) -> set[str]:
        out = set()
        for pc in planned:
            if pc.deployment == d:
                for name, var in pc.env.items():
                    for value in service_urls(name, var.value):
                        u = urlsplit(value)
                        t = service_ports.get((u.hostname or "").split(".")[0], {}).get(u.port)
                        if t and t != d:
                            out.add(t)
        return out

    order: list[str] = []
    pending = list(deployments)
    while pending:
        ready = [d for d in pending if deps_of(d) <= set(order)] or pending[:1]
        order.append(ready[0])
        pending.remove(ready[0])

    logs = Path(tempfile.mkdtemp(prefix="crm-k8s-live-"))
    running: list[tuple[PlannedContainer, subprocess.Popen, Path]] = []
    ok = True
    try:
        for d in order:
            for pc in [p for p in planned if p.deployment == d]:
                label = f"live {rendered.path.name}: {d}/{pc.container}"
                try:
                    env = process_env(pc, stand_ins, local_ports, service_ports)
                except LookupError as e:
                    failures.add(label, str(e))
                    ok = False
                    break
                log = logs / f"{d}-{pc.container}.log"
                with log.open("w") as out:
                    proc = subprocess.Popen([str(pc.binary.path), *pc.args], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=logs)
                if pc.init:
                    try:
                        rc = proc.wait(timeout=120)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                        rc = "timeout (still running after 120 s: does the binary know CRM_MIGRATE_ONLY?)"
                    if rc != 0:
                        failures.add(label, f"exited {rc}; last output:\n{tail(log)}")
                        ok = False
                        break
                    print(f"k8s-drift: {label}: migrations applied, exited 0")
                    continue
                running.append((pc, proc, log))
                port = local_ports[d]
                readiness = pc.probes.get("readinessProbe") or {}
                what = f"GET {readiness['httpGet'].get('path')} 200" if "httpGet" in readiness else "SERVING"
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and proc.poll() is None and not is_ready(pc, port):
                    time.sleep(0.3)
                if proc.poll() is not None or not is_ready(pc, port):
                    state = f"exited {proc.returncode}" if proc.poll() is not None else f"not ready ({what}) after 60 s"
                    if "httpGet" in readiness and proc.poll() is None:
                        state += f"; last answer: {http_get(port, readiness['httpGet'].get('path', '/'))}"
                    failures.add(label, f"{state}; last output:\n{tail(log)}")
                    ok = False
                    break
                print(f"k8s-drift: {label}: ready ({what}) on 127.0.0.1:{port} with its rendered environment")
                # Every other HTTP probe path must exist and answer 200 on a ready server.
                for probe_name, probe in pc.probes.items():
                    if "httpGet" in probe and probe is not readiness:
                        path = probe["httpGet"].get("path", "/")
                        status, body = http_get(port, path)
                        if status != 200:
                            failures.add(label, f"{probe_name} GET {path}: {status} {body[:200]}")
                            ok = False
                        else:
                            print(f"k8s-drift: {label}: {probe_name} GET {path} 200")
                # Exact paths an Ingress publishes must exist (not 404) on the server.
                for path in sorted((published or {}).get(d, set())):
                    status, body = http_get(port, path)
                    if status is None or status == 404:
                        failures.add(label, f"Ingress path {path}: GET -> {status} {body[:200]}")
                        ok = False
                    else:
                        print(f"k8s-drift: {label}: Ingress path GET {path} -> {status}")
                # Routed, authenticated calls through the gateway to each backend.
                smoke = smoke_by_binary.get(pc.binary.name, [])
                if smoke:
                    secret = env.get("CRM_JWT_SECRET")
                    issuer = env.get("CRM_JWT_ISSUER") or pc.binary.defaults.get("CRM_JWT_ISSUER", "crm")
                    token = hs256_token(secret, issuer) if secret else None
                    for path, expected in smoke:
                        status, body = http_get(port, path, token)
                        if status != expected:
                            failures.add(label, f"GET {path} with a token: {status} (expected {expected}) {body[:300]}")
                            ok = False
                        else:
                            print(f"k8s-drift: {label}: GET {path} with a token -> {status}")
                    status, _ = http_get(port, smoke[0][0])
                    if status != 401:
                        failures.add(label, f"GET {smoke[0][0]} without a token: {status} (expected 401)")
                        ok = False
                if not ok:
                    break
            if not ok:
                break
        # Graceful stop, newest first (as the pods would drain), within each pod's grace period.
        for pc, proc, log in reversed(running):
            label = f"live {rendered.path.name}: {pc.deployment}/{pc.container}"
            # The kubelet's grace period includes the preStop sleep; SIGTERM comes after it.
            budget = pc.grace_s - pc.pre_stop_s
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=budget)
            except subprocess.TimeoutExpired:
                failures.add(label, f"still running {budget}s after SIGTERM (terminationGracePeriodSeconds "
                                    f"{pc.grace_s} - preStop {pc.pre_stop_s})")
                continue
            if rc != 0:
                failures.add(label, f"exited {rc} on SIGTERM; last output:\n{tail(log)}")
            else:
                print(f"k8s-drift: {label}: SIGTERM -> exit 0 in {time.monotonic() - started:.1f}s "
                      f"(budget {budget}s: terminationGracePeriodSeconds {pc.grace_s} - preStop {pc.pre_stop_s})")
    finally:
        for _, proc, _ in running:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        databases.drop_all()
        if failures:
            print(f"k8s-drift: live logs kept in {logs}")
        else:
            shutil.rmtree(logs, ignore_errors=True)


# --- main --------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="rendered overlays (kubectl kustomize output)")
    parser.add_argument("--live", choices=["auto", "require", "off"], default=os.environ.get("CRM_K8S_LIVE", "auto"))
    parser.add_argument("--live-overlay", default="dev", help="which rendered file (by stem) to start locally")
    parser.add_argument("--suite", type=Path, default=SUITE_FILE, help="the list of the services (default services/suite.tsv)")
    args = parser.parse_args()

    suite = load_suite(args.suite)
    failures = Failures()
    check_external_env(failures)
    binaries: dict[str, Binary] = {}
    plans = {}
    for path in args.files:
        rendered = Rendered.load(path)
        planned = check_rendered(rendered, binaries, failures)
        check_suite(rendered, planned, suite, failures)
        plans[path.stem] = (rendered, planned)
        n = len(rendered.crm_deployments())
        print(f"k8s-drift: {path.name}: {n} CRM Deployments checked against {', '.join(sorted(binaries))}")

    if failures:
        print("k8s-drift: static checks failed; live check not attempted", file=sys.stderr)
    elif args.live != "off":
        if args.live_overlay not in plans:
            failures.add("live", f"no rendered file named {args.live_overlay}.yaml among {sorted(plans)}")
        else:
            published = ingress_exact_paths([r for r, _ in plans.values()])
            live_check(*plans[args.live_overlay], args.live, failures, suite, published)

    for item in failures.items:
        print(f"FAIL {item}", file=sys.stderr)
    if failures:
        print(f"k8s-drift: {len(failures.items)} problem(s)", file=sys.stderr)
        return 1
    print("k8s-drift: manifests and binaries agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Checks that the rendered Kubernetes manifests still fit the binaries.

    k8s_drift_check.py [--live auto|require|off] [--live-overlay dev] rendered/dev.yaml rendered/prod.yaml

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
  declares (named `grpc` where it has such a name), the probes check and the
  Services target; URLs of
  other services (CRM_*_URL) name a Service port that exists;
- the init container runs the migrations (CRM_MIGRATE_ONLY=true) with the
  owner's URL, and the server container never holds that URL;
- terminationGracePeriodSeconds covers preStop + CRM_SHUTDOWN_DRAIN_MS +
  CRM_SHUTDOWN_GRACE_MS.

Live part (--live auto, the default): when a Postgres for the services is
known (PROFILES_DATABASE_URL and friends in the environment, or the dev
cluster's .data/env written by `make db-up`) and answers, the Deployments of
one overlay (--live-overlay, default dev) are started as local processes with
exactly their rendered environment: secrets replaced by URLs of a throwaway
database per service (test_<svc>_k8s_<random>, created by the owner role as
the tests do, dropped afterwards; `dev-db.sh prune-tests` removes leftovers)
and throwaway keys, Service hosts rewritten to 127.0.0.1, listen ports moved
to free ports, the collector endpoint dropped. Each init container must
exit 0, each server must report SERVING through grpc.health.v1, and each must
exit 0 on SIGTERM within its grace period. `--live require` fails instead of
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


class Failures:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, msg: str) -> None:
        self.items.append(f"{where}: {msg}")

    def __bool__(self) -> bool:
        return bool(self.items)


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
                drain = ms_setting(env, binary, "CRM_SHUTDOWN_DRAIN_MS")
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
            planned.append(PlannedContainer(dname, c["name"], is_init, binary, env, args, listen_port, grace))

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
        if p.get("name") == "grpc" and p["containerPort"] != port:
            failures.add(where, f"container port `grpc` is {p['containerPort']}, but the server listens on {port}")
    for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = c.get(probe_name)
        if not probe:
            failures.add(where, f"no {probe_name}")
            continue
        for kind in ("grpc", "tcpSocket", "httpGet"):
            if kind in probe:
                p = resolve_port(c, probe[kind].get("port"))
                if p != port:
                    failures.add(where, f"{probe_name} {kind} port {probe[kind].get('port')!r} = {p} != listen port {port}")
    return port


def check_urls(rendered: Rendered, planned: list[PlannedContainer], failures: Failures) -> None:
    """CRM_*_URL values pointing at a Service of the same namespace must name one of its ports."""
    for pc in planned:
        for name, var in pc.env.items():
            if not (name.startswith("CRM_") and name.endswith("_URL")) or not var.value:
                continue
            url = urlsplit(var.value)
            host = (url.hostname or "").split(".")[0]
            if host not in rendered.services:
                continue
            ports = [p["port"] for p in rendered.services[host]["spec"].get("ports") or []]
            if url.port not in ports:
                failures.add(
                    f"{rendered.path.name}: Deployment/{pc.deployment} {pc.container}",
                    f"{name}={var.value}: Service {host} has ports {ports}",
                )


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
        raise LookupError(f"no local stand-in for Secret {secret} key {key}: add one to SecretStandIns")


def process_env(pc: PlannedContainer, stand_ins: SecretStandIns, local_ports: dict[str, int], service_ports: dict[str, dict[int, str]]) -> dict[str, str]:
    env = clean_env()
    for name, var in pc.env.items():
        if name == "OTEL_EXPORTER_OTLP_ENDPOINT":
            continue  # no collector here; the services then export nothing
        if var.secret:
            env[name] = stand_ins.value(*var.secret)
        elif var.value is not None:
            env[name] = var.value
    if not pc.init and pc.listen_port:
        env["CRM_LISTEN_ADDR"] = f"127.0.0.1:{local_ports[pc.deployment]}"
    for name, value in list(env.items()):
        if name.startswith("CRM_") and name.endswith("_URL"):
            url = urlsplit(value)
            host = (url.hostname or "").split(".")[0]
            target = service_ports.get(host, {}).get(url.port)
            if target:
                env[name] = f"{url.scheme}://127.0.0.1:{local_ports[target]}{url.path}"
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


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def live_check(rendered: Rendered, planned: list[PlannedContainer], mode: str, failures: Failures) -> None:
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
    deployments = list(dict.fromkeys(p.deployment for p in planned))
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
                    if name.endswith("_URL") and var.value:
                        u = urlsplit(var.value)
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
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and proc.poll() is None and not grpc_serving(port):
                    time.sleep(0.3)
                if proc.poll() is not None or not grpc_serving(port):
                    state = f"exited {proc.returncode}" if proc.poll() is not None else "not SERVING after 60 s"
                    failures.add(label, f"{state}; last output:\n{tail(log)}")
                    ok = False
                    break
                print(f"k8s-drift: {label}: SERVING on 127.0.0.1:{port} with its rendered environment")
            if not ok:
                break
        # Graceful stop, newest first (as the pods would drain), within each pod's grace period.
        for pc, proc, log in reversed(running):
            label = f"live {rendered.path.name}: {pc.deployment}/{pc.container}"
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=pc.grace_s)
            except subprocess.TimeoutExpired:
                failures.add(label, f"still running {pc.grace_s}s (terminationGracePeriodSeconds) after SIGTERM")
                continue
            if rc != 0:
                failures.add(label, f"exited {rc} on SIGTERM; last output:\n{tail(log)}")
            else:
                print(f"k8s-drift: {label}: SIGTERM -> exit 0 in {time.monotonic() - started:.1f}s (budget {pc.grace_s}s)")
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
    args = parser.parse_args()

    failures = Failures()
    check_external_env(failures)
    binaries: dict[str, Binary] = {}
    plans = {}
    for path in args.files:
        rendered = Rendered.load(path)
        plans[path.stem] = (rendered, check_rendered(rendered, binaries, failures))
        n = len(rendered.crm_deployments())
        print(f"k8s-drift: {path.name}: {n} CRM Deployments checked against {', '.join(sorted(binaries))}")

    if failures:
        print("k8s-drift: static checks failed; live check not attempted", file=sys.stderr)
    elif args.live != "off":
        if args.live_overlay not in plans:
            failures.add("live", f"no rendered file named {args.live_overlay}.yaml among {sorted(plans)}")
        else:
            live_check(*plans[args.live_overlay], args.live, failures)

    for item in failures.items:
        print(f"FAIL {item}", file=sys.stderr)
    if failures:
        print(f"k8s-drift: {len(failures.items)} problem(s)", file=sys.stderr)
        return 1
    print("k8s-drift: manifests and binaries agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())

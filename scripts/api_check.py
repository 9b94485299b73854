#!/usr/bin/env python3
"""Checks of a running gateway's API description (what scripts/api-check.sh calls).

  api_check.py spec BASE_URL      validate BASE_URL/openapi.json with openapi-spec-validator
                                  (OpenAPI 3.1) and a few facts the generator promises
  api_check.py statuses HAR BASE_URL MODE
                                  count the responses of a schemathesis HAR report by status
                                  and by how far each call got: refused by the gateway, refused
                                  by a service's input checks, or past them into the handler's
                                  work (found, not found, conflicts, done); with MODE positive,
                                  lists the operations (of BASE_URL/openapi.json) no call got
                                  past the checks (negative data is meant to be refused)
  api_check.py docs BASE_URL      load BASE_URL/docs in headless Chromium, let Redoc render,
                                  and check that every operation of the document is listed

Runs in the tools venv (openapi-spec-validator); `docs` needs chromium on PATH
(or CHROMIUM=/path/to/chromium).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request

VERBS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def fetch_document(base: str) -> dict:
    with urllib.request.urlopen(f"{base}/openapi.json", timeout=10) as response:
        if response.status != 200:
            sys.exit(f"api-check: GET /openapi.json answered {response.status}")
        return json.load(response)


def operation_ids(document: dict) -> list[str]:
    return [op["operationId"] for item in document["paths"].values() for verb, op in item.items() if verb in VERBS]


def check_spec(base: str) -> None:
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator

    document = fetch_document(base)
    if document.get("openapi") != "3.1.0":
        sys.exit(f"api-check: openapi is {document.get('openapi')!r}, not 3.1.0")
    # Raises with the first problem and where it is.
    validate(document, cls=OpenAPIV31SpecValidator)
    ids = operation_ids(document)
    if len(ids) != len(set(ids)):
        sys.exit("api-check: duplicate operationIds")
    if "bearerAuth" not in document["components"]["securitySchemes"]:
        sys.exit("api-check: no bearerAuth security scheme")
    public = [op["operationId"] for item in document["paths"].values() for op in item.values() if op.get("security") == []]
    print(f"spec: OpenAPI 3.1 document valid: {len(document['paths'])} paths, {len(ids)} operations, "
          f"{len(document['components']['schemas'])} schemas; public: {', '.join(public) or 'none'}")


def check_docs(base: str) -> None:
    document = fetch_document(base)
    ids = set(operation_ids(document))
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("api-check: chromium not found (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        # The virtual-time budget lets Redoc fetch the document and render before the DOM is dumped.
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
             "--virtual-time-budget=20000", "--dump-dom", f"{base}/docs"],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout
    listed = set(re.findall(r'id="operation/([^"]+)"', dom))
    missing = sorted(ids - listed)
    if missing:
        sys.exit(f"api-check: /docs does not list {len(missing)} of {len(ids)} operations, e.g. {missing[:5]} "
                 f"(DOM: {len(dom)} bytes)")
    title = document["info"]["title"]
    if title not in dom:
        sys.exit(f"api-check: /docs does not show the title {title!r}")
    print(f"docs: Redoc rendered /docs with all {len(ids)} operations")


def error_info(entry: dict) -> tuple[str, str]:
    """(domain, reason) of an error response's google.rpc.ErrorInfo, or ("", "")."""
    try:
        details = json.loads(entry["response"]["content"]["text"])["error"].get("details", [])
    except (KeyError, TypeError, ValueError):
        return "", ""
    info = next((d for d in details if d.get("@type", "").endswith("google.rpc.ErrorInfo")), {})
    return info.get("domain", ""), info.get("reason", "")


def how_far(entry: dict) -> str:
    """Where a call ended: "gateway" (refused before any service was called),
    "input" (a service refused its input: 400), or "handler" (past the input
    checks: an answer, a lookup that found nothing, a conflict, a refusal by
    permission or state)."""
    status = entry["response"]["status"]
    if status < 400:
        return "handler"
    domain, _ = error_info(entry)
    if domain == "gateway.crm" or not domain:
        return "gateway"
    return "input" if status == 400 else "handler"


def operation_matchers(document: dict) -> list[tuple[str, re.Pattern, str]]:
    """(verb, path regex, operationId) for every operation, most literal paths first."""
    matchers = []
    for path, item in document["paths"].items():
        regex = re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(path)) + "$")
        for verb, op in item.items():
            if verb in VERBS:
                matchers.append((verb.upper(), regex, op["operationId"], path.count("{")))
    return [(verb, regex, op_id) for verb, regex, op_id, _ in sorted(matchers, key=lambda m: m[3])]


def statuses(har_path: str, base: str, mode: str) -> None:
    with open(har_path, encoding="utf-8") as f:
        entries = json.load(f)["log"]["entries"]
    matchers = operation_matchers(fetch_document(base))
    by_status: dict[int, int] = {}
    by_stage = {"gateway": 0, "input": 0, "handler": 0}
    reasons: dict[str, int] = {}
    per_operation: dict[str, dict[str, int]] = {op_id: {} for _, _, op_id in matchers}
    for entry in entries:
        status = entry["response"]["status"]
        by_status[status] = by_status.get(status, 0) + 1
        stage = how_far(entry)
        by_stage[stage] += 1
        if stage == "input":
            reason = error_info(entry)[1]
            reasons[reason] = reasons.get(reason, 0) + 1
        method = entry["request"]["method"]
        path = urllib.parse.urlsplit(entry["request"]["url"]).path
        op_id = next((o for verb, regex, o in matchers if verb == method and regex.match(urllib.parse.unquote(path))), None)
        if op_id:
            per_operation[op_id][stage] = per_operation[op_id].get(stage, 0) + 1
    total = len(entries)
    share = lambda n: f"{n} ({100 * n / total:.0f} %)" if total else "0"
    print("  " + ", ".join(f"{status}: {count}" for status, count in sorted(by_status.items())) + f" ({total} requests)")
    print(f"  past the services' input checks into their handlers: {share(by_stage['handler'])}; "
          f"refused by a service's input checks: {share(by_stage['input'])}; refused by the gateway: {share(by_stage['gateway'])}")
    top = sorted(reasons.items(), key=lambda r: -r[1])[:6]
    print("  input refusals by reason: " + ", ".join(f"{reason or '?'} {count}" for reason, count in top))
    if mode != "positive":
        return
    never = sorted(op_id for op_id, stages in per_operation.items() if stages and not stages.get("handler"))
    called = sum(1 for stages in per_operation.values() if stages)
    print(f"  operations called: {called} of {len(per_operation)}; with no call past the input checks: {len(never)}"
          + (f" ({', '.join(never)})" if never else ""))


def main() -> None:
    if len(sys.argv) not in (3, 5) or sys.argv[1] not in {"spec", "docs", "statuses"}:
        sys.exit(__doc__)
    if sys.argv[1] == "statuses":
        if len(sys.argv) != 5:
            sys.exit(__doc__)
        statuses(sys.argv[2], sys.argv[3].rstrip("/"), sys.argv[4])
        return
    base = sys.argv[2].rstrip("/")
    {"spec": check_spec, "docs": check_docs}[sys.argv[1]](base)


if __name__ == "__main__":
    main()

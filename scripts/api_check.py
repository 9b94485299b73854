#!/usr/bin/env python3
"""Checks of a running gateway's API description (what scripts/api-check.sh calls).

  api_check.py spec BASE_URL      validate BASE_URL/openapi.json with openapi-spec-validator
                                  (OpenAPI 3.1) and a few facts the generator promises
  api_check.py statuses HAR       count the responses of a schemathesis HAR report by
                                  operation and status (to see that calls got through)
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


def statuses(har_path: str) -> None:
    with open(har_path, encoding="utf-8") as f:
        entries = json.load(f)["log"]["entries"]
    by_status: dict[int, int] = {}
    ok_paths: set[str] = set()
    for entry in entries:
        status = entry["response"]["status"]
        by_status[status] = by_status.get(status, 0) + 1
        if status == 200:
            ok_paths.add(entry["request"]["method"] + " " + re.sub(r"/[0-9a-f-]{36}", "/{id}", entry["request"]["url"].split("?")[0]))
    print("  " + ", ".join(f"{status}: {count}" for status, count in sorted(by_status.items())) + f" ({len(entries)} requests)")
    print(f"  200 from {len(ok_paths)} distinct method+path shapes")


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in {"spec", "docs", "statuses"}:
        sys.exit(__doc__)
    if sys.argv[1] == "statuses":
        statuses(sys.argv[2])
        return
    base = sys.argv[2].rstrip("/")
    {"spec": check_spec, "docs": check_docs}[sys.argv[1]](base)


if __name__ == "__main__":
    main()

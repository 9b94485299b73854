#!/usr/bin/env python3
"""Schema validation of rendered kustomize output (part of `make k8s-check`).

    k8s_validate.py --kubernetes-version 1.32.0 rendered/dev.yaml rendered/prod.yaml

Every document is validated strictly (unknown fields are errors) with
kubernetes-validate against the given Kubernetes version's OpenAPI schema.
kubernetes-validate only knows built-in kinds: the custom resources we use
are listed in SKIPPED_CRDS and skipped by name; any other kind without a
schema is an error, so a typo in apiVersion/kind cannot pass as "unknown".
"""

import argparse
import sys

import kubernetes_validate
import yaml

# Custom resources: validated by their operator's admission webhook when
# applied, not here (no schema offline).
SKIPPED_CRDS = {
    ("postgresql.cnpg.io/v1", "Cluster"),  # CloudNativePG
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", required=True)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    failures = 0
    for path in args.files:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        validated = skipped = 0
        for doc in docs:
            key = (doc.get("apiVersion"), doc.get("kind"))
            name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            if key in SKIPPED_CRDS:
                skipped += 1
                continue
            try:
                kubernetes_validate.validate(doc, args.kubernetes_version, strict=True)
                validated += 1
            except kubernetes_validate.SchemaNotFoundError:
                print(f"ERROR {path}: {name}: no schema for {key[0]} {key[1]} in Kubernetes "
                      f"{args.kubernetes_version} (a typo, or a CRD to add to SKIPPED_CRDS)")
                failures += 1
            except kubernetes_validate.ValidationError as e:
                where = "/".join(str(p) for p in e.path)
                print(f"ERROR {path}: {name}: {where}: {e.message}")
                failures += 1
        print(f"{path}: {validated} objects valid (strict, Kubernetes {args.kubernetes_version}), "
              f"{skipped} custom resources skipped ({', '.join(sorted(k for _, k in SKIPPED_CRDS))})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

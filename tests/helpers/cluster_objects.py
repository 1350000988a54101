"""Every object of a real cluster, metadata only: for leftover checks after a teardown.

Walks the API server's discovery (every group-version, every resource that can be listed,
subresources skipped) and lists each resource across all namespaces. Only kind, namespace,
name, resourceVersion, labels and the field managers are kept, never an object's content
(Secrets stay secret).

    python tests/helpers/cluster_objects.py --kubeconfig FILE [--context NAME]   (JSON list on stdout)
"""

from __future__ import annotations

import argparse
import json
import sys


def list_objects(kubeconfig: str, context: str | None = None) -> list[dict]:
    from kubernetes import client, config  # noqa: PLC0415 - the CLI and the tests import this module cheaply

    api = config.new_client_from_config(config_file=kubeconfig, context=context)
    out: list[dict] = []
    seen: set[tuple[str, str]] = set()
    group_versions = ["v1"] + [
        g.preferred_version.group_version for g in client.ApisApi(api).get_api_versions().groups
    ]
    for gv in group_versions:
        path = "/api/v1" if gv == "v1" else f"/apis/{gv}"
        resources = api.call_api(path, "GET", response_type="object", auth_settings=["BearerToken"], _return_http_data_only=True)
        for res in resources.get("resources", []):
            if "/" in res["name"] or "list" not in res.get("verbs", []) or (gv, res["kind"]) in seen:
                continue
            seen.add((gv, res["kind"]))
            items = api.call_api(f"{path}/{res['name']}", "GET", response_type="object", auth_settings=["BearerToken"],
                                 _return_http_data_only=True).get("items", [])
            for item in items:
                meta = item.get("metadata", {})
                out.append({
                    "apiVersion": gv, "kind": res["kind"], "namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
                    "resourceVersion": meta.get("resourceVersion", ""), "labels": meta.get("labels") or {},
                    "managers": sorted({m.get("manager", "") for m in meta.get("managedFields") or []}),
                })
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--context")
    args = parser.parse_args(argv)
    json.dump(list_objects(args.kubeconfig, args.context), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

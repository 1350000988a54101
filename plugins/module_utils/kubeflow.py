# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plain-Python logic behind the ``nga4m.platform.kubeflow`` role's filters.

* :func:`split_phases` parses ``kustomize build`` output and splits it into the
  ordered apply phases of the role (namespaces, CRDs, cert-manager, the rest).
* :func:`add_menu_link` merges one entry into the central dashboard's
  ``links`` JSON (idempotent: an entry with the same ``link`` is never added twice).
* :func:`failed_objects` pairs the definitions given to ``kubernetes.core.k8s``
  (with ``continue_on_error``) with the per-object errors it returned.
* :func:`crds_pending` names the CRDs that are not ``Established`` yet.
* :func:`dockerconfigjson` renders the ``.dockerconfigjson`` of a registry Secret.

No Ansible imports: unit tests call these functions directly.
"""

from __future__ import annotations

import base64
import copy
import json

from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError

try:
    import yaml

    _LOADER = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None
    _LOADER = None

#: kinds applied in phase 1 (before anything that may depend on them)
PHASE1_KINDS = ("Namespace", "CustomResourceDefinition")
CERT_MANAGER_INSTANCE_LABEL = "app.kubernetes.io/instance"


def _parse_documents(texts) -> list:
    """Every mapping document of one or more multi-document YAML strings (or already parsed lists)."""
    if isinstance(texts, (str, bytes)):
        texts = [texts]
    docs: list = []
    for text in texts or []:
        if isinstance(text, dict):
            docs.append(text)
            continue
        if isinstance(text, list):
            docs.extend(text)
            continue
        if yaml is None:  # pragma: no cover
            raise NGA4MError("PyYAML is required to parse kustomize output")
        try:
            parsed = list(yaml.load_all(str(text), Loader=_LOADER))  # noqa: S506 - SafeLoader/CSafeLoader
        except yaml.YAMLError as exc:
            raise NGA4MError(f"kustomize build output is not valid YAML: {exc}") from exc
        docs.extend(parsed)
    out = []
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise NGA4MError(f"kustomize build output holds a non-object document: {str(doc)[:80]!r}")
        if doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
            out.extend(item for item in doc["items"] if isinstance(item, dict))
            continue
        out.append(doc)
    for doc in out:
        if not doc.get("apiVersion") or not doc.get("kind") or not (doc.get("metadata") or {}).get("name"):
            raise NGA4MError(
                "kustomize build output holds an object without apiVersion, kind or metadata.name: "
                f"{json.dumps(doc, sort_keys=True)[:160]}"
            )
    return out


def object_key(obj: dict) -> tuple:
    """(group, kind, namespace, name): the identity of an object for de-duplication."""
    api_version = obj.get("apiVersion", "")
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    meta = obj.get("metadata") or {}
    return (group, obj.get("kind"), meta.get("namespace") or "", meta.get("name"))


def object_ref(obj: dict) -> str:
    """A short human reference: ``Kind namespace/name`` or ``Kind name``."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')} {ns + '/' if ns else ''}{meta.get('name')}"


def is_cert_manager(obj: dict, namespace: str = "cert-manager", instance: str = "cert-manager") -> bool:
    meta = obj.get("metadata") or {}
    if obj.get("kind") in PHASE1_KINDS:
        return False
    if meta.get("namespace") == namespace:
        return True
    labels = meta.get("labels") or {}
    return labels.get(CERT_MANAGER_INSTANCE_LABEL) == instance


def add_menu_link(links_json: str, link: dict, section: str = "menuLinks") -> str:
    """Return ``links_json`` with ``link`` appended to ``section`` unless an entry with its ``link`` exists.

    The input string is returned unchanged when nothing needs adding, so callers
    can compare strings to decide whether to write.
    """
    if not isinstance(link, dict) or not str(link.get("link", "")).strip():
        raise NGA4MError("the dashboard link must be a mapping with a non-empty 'link' (e.g. /mlflow/)")
    try:
        data = json.loads(links_json) if (links_json or "").strip() else {}
    except ValueError as exc:
        raise NGA4MError(f"the dashboard links value is not valid JSON ({exc}); fix the ConfigMap or disable the link") from exc
    if not isinstance(data, dict):
        raise NGA4MError("the dashboard links JSON must be an object holding a 'menuLinks' list")
    entries = data.setdefault(section, [])
    if not isinstance(entries, list):
        raise NGA4MError(f"the dashboard links JSON has a '{section}' that is not a list")
    if any(isinstance(e, dict) and e.get("link") == link["link"] for e in entries):
        return links_json
    entries.append(dict(link))
    return json.dumps(data, indent=4)


def count_menu_links(links_json: str, link_path: str, section: str = "menuLinks") -> int:
    """How many ``section`` entries point at ``link_path`` (for verification)."""
    try:
        data = json.loads(links_json or "{}")
    except ValueError:
        return 0
    entries = data.get(section) if isinstance(data, dict) else None
    return sum(1 for e in entries or [] if isinstance(e, dict) and e.get("link") == link_path)


def split_phases(
    texts,
    cert_manager_namespace: str = "cert-manager",
    cert_manager_instance: str = "cert-manager",
    dashboard_configmaps=None,
    menu_link=None,
) -> dict:
    """Parse kustomize output and split it into the role's apply phases.

    Returns ``namespaces``, ``crds``, ``cert_manager``, ``rest`` (lists of
    objects, build order kept, duplicates resolved to the last occurrence),
    ``crd_names``, ``cert_manager_deployments`` ([{namespace, name}]) and
    ``counts``. When ``menu_link`` is given, a dashboard ConfigMap matching one
    of ``dashboard_configmaps`` ([{namespace, name, key}]) gets the link merged
    into its links JSON before it is applied, so re-applying the build never
    removes the link again.
    """
    docs = _parse_documents(texts)
    unique: dict = {}
    for doc in docs:
        key = object_key(doc)
        unique.pop(key, None)
        unique[key] = doc
    docs = list(unique.values())
    targets = {
        (c.get("namespace", "kubeflow"), c["name"]): c.get("key", "links")
        for c in (dashboard_configmaps or [])
        if isinstance(c, dict) and c.get("name")
    }
    phases: dict = {"namespaces": [], "crds": [], "cert_manager": [], "rest": []}
    for doc in docs:
        kind = doc.get("kind")
        meta = doc.get("metadata") or {}
        if menu_link and kind == "ConfigMap" and doc.get("apiVersion") == "v1":
            data_key = targets.get((meta.get("namespace"), meta.get("name")))
            if data_key and data_key in (doc.get("data") or {}):
                doc = copy.deepcopy(doc)
                doc["data"][data_key] = add_menu_link(doc["data"][data_key], menu_link)
        if kind == "Namespace":
            phases["namespaces"].append(doc)
        elif kind == "CustomResourceDefinition":
            phases["crds"].append(doc)
        elif is_cert_manager(doc, cert_manager_namespace, cert_manager_instance):
            phases["cert_manager"].append(doc)
        else:
            phases["rest"].append(doc)
    phases["crd_names"] = [d["metadata"]["name"] for d in phases["crds"]]
    phases["cert_manager_deployments"] = [
        {"namespace": d["metadata"].get("namespace", "default"), "name": d["metadata"]["name"]}
        for d in phases["cert_manager"]
        if d.get("kind") == "Deployment" and d.get("apiVersion") == "apps/v1"
    ]
    phases["counts"] = {k: len(phases[k]) for k in ("namespaces", "crds", "cert_manager", "rest")}
    phases["counts"]["total"] = len(docs)
    return phases


def failed_objects(definitions, result) -> list:
    """Pair the definitions of a ``kubernetes.core.k8s`` run (``continue_on_error``) with their errors.

    ``result`` is the registered task result. Returns ``[{"object", "ref", "error"}]``
    for every definition that failed; an empty list when all were applied. A
    result that failed as a whole (no per-object results) marks every
    definition as failed with that message.
    """
    definitions = list(definitions or [])
    result = result or {}
    if result.get("skipped"):
        return []
    per_object = (result.get("result") or {}).get("results") if isinstance(result.get("result"), dict) else None
    if per_object is None:
        if len(definitions) == 1 and "error" in result:
            per_object = [result]
        elif result.get("failed"):
            msg = result.get("msg") or "the task failed"
            return [{"object": d, "ref": object_ref(d), "error": str(msg)} for d in definitions]
        else:
            per_object = [result] if len(definitions) == 1 else []
    out = []
    for definition, res in zip(definitions, per_object):
        err = (res or {}).get("error")
        if err:
            msg = err.get("msg") if isinstance(err, dict) else str(err)
            out.append({"object": definition, "ref": object_ref(definition), "error": str(msg)})
    return out


def crds_pending(resources, names) -> list:
    """Names (of ``names``) whose CRD in ``resources`` is missing or not ``Established=True``."""
    established = set()
    for crd in resources or []:
        for cond in ((crd or {}).get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Established" and str(cond.get("status")) == "True":
                established.add((crd.get("metadata") or {}).get("name"))
    return [n for n in names or [] if n not in established]


def dockerconfigjson(credentials) -> str:
    """The ``.dockerconfigjson`` document for ``[{registry, username, password}]``."""
    auths = {}
    for index, cred in enumerate(credentials or []):
        if not isinstance(cred, dict) or not all(str(cred.get(k) or "").strip() for k in ("registry", "username", "password")):
            raise NGA4MError(f"registry credential entry #{index} needs non-empty registry, username and password")
        token = base64.b64encode(f"{cred['username']}:{cred['password']}".encode()).decode()
        auths[str(cred["registry"])] = {"username": str(cred["username"]), "password": str(cred["password"]), "auth": token}
    return json.dumps({"auths": auths}, sort_keys=True)


def deployments_pending(resources, wanted) -> list:
    """``namespace/name`` of each wanted Deployment ({namespace, name}) that is missing or not ``Available=True``."""
    available = set()
    for dep in resources or []:
        meta = (dep or {}).get("metadata") or {}
        for cond in ((dep or {}).get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Available" and str(cond.get("status")) == "True":
                available.add((meta.get("namespace"), meta.get("name")))
    return [f"{w['namespace']}/{w['name']}" for w in wanted or [] if (w["namespace"], w["name"]) not in available]


def pick_configmaps(resources, candidates) -> list:
    """The candidate ConfigMaps ({namespace, name, key}) found in ``resources`` that hold their key.

    Returns ``[{"namespace", "name", "key", "value"}]`` in candidate order.
    """
    by_id = {((o.get("metadata") or {}).get("namespace"), (o.get("metadata") or {}).get("name")): o for o in resources or []}
    out = []
    for cand in candidates or []:
        ns = cand.get("namespace") or "kubeflow"
        key = cand.get("key") or "links"
        obj = by_id.get((ns, cand.get("name")))
        if obj is not None and key in (obj.get("data") or {}):
            out.append({"namespace": ns, "name": cand["name"], "key": key, "value": obj["data"][key]})
    return out

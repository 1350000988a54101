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
* :func:`set_dex_user` replaces the Dex static user (email and bcrypt hash) of a
  build, so the manifests' default password is never applied (its hash: module_utils/passwords.py).

No Ansible imports: unit tests call these functions directly.
"""

from __future__ import annotations

import base64
import copy
import hashlib
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
    ``crd_names``, ``cert_manager_workloads`` and ``workloads`` (the
    Deployments and StatefulSets of the cert-manager phase and of the rest, as
    ``[{kind, namespace, name}]``: what the role waits for), ``unsubstituted``
    (objects whose name or namespace still holds a kustomize variable ``$(...)``:
    built with a kustomize the manifests do not support) and ``counts``. When ``menu_link`` is given, a dashboard ConfigMap matching one
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
    phases["cert_manager_workloads"] = workloads_of(phases["cert_manager"])
    phases["workloads"] = workloads_of(phases["rest"])
    # kustomize variables ($(name)) a kustomize of another version did not substitute: such a build is not the release's
    phases["unsubstituted"] = [
        object_ref(d) for d in docs
        if "$(" in str((d.get("metadata") or {}).get("name", "")) or "$(" in str((d.get("metadata") or {}).get("namespace", ""))
    ]
    phases["counts"] = {k: len(phases[k]) for k in ("namespaces", "crds", "cert_manager", "rest")}
    phases["counts"]["total"] = len(docs)
    phases["dex"] = dex_report(docs)
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


WORKLOAD_KINDS = ("Deployment", "StatefulSet")


def workloads_of(docs) -> list:
    """``[{kind, namespace, name}]`` of every apps/v1 Deployment and StatefulSet in ``docs`` (build order)."""
    return [
        {"kind": d["kind"], "namespace": (d.get("metadata") or {}).get("namespace") or "default", "name": d["metadata"]["name"]}
        for d in docs or []
        if d.get("kind") in WORKLOAD_KINDS and d.get("apiVersion") == "apps/v1"
    ]


def _workload_ready(obj: dict) -> bool:
    """A Deployment is Available with its rollout done; a StatefulSet has every replica ready and updated."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    meta = obj.get("metadata") or {}
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return False
    replicas = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    if obj.get("kind") == "StatefulSet":
        revision_done = not status.get("updateRevision") or status.get("currentRevision") == status.get("updateRevision")
        return int(status.get("readyReplicas") or 0) >= replicas and revision_done
    available = any(c.get("type") == "Available" and str(c.get("status")) == "True" for c in status.get("conditions") or [])
    return available and int(status.get("updatedReplicas") or 0) >= replicas


def workloads_pending(resources, wanted) -> list:
    """``Kind namespace/name`` of each wanted workload (``{kind, namespace, name}``, kind defaulting to Deployment)
    that is missing from ``resources`` (listed Deployments and StatefulSets) or not ready yet."""
    ready = {
        ((r or {}).get("kind") or "Deployment", ((r or {}).get("metadata") or {}).get("namespace"), ((r or {}).get("metadata") or {}).get("name"))
        for r in resources or []
        if _workload_ready(r or {})
    }
    out = []
    for w in wanted or []:
        kind = w.get("kind") or "Deployment"
        if (kind, w["namespace"], w["name"]) not in ready:
            out.append(f"{kind} {w['namespace']}/{w['name']}")
    return out


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


# --------------------------------------------------------------------------- Dex static user
#: the data key of the Dex configuration in its ConfigMap
DEX_CONFIG_KEY = "config.yaml"
#: pod template annotation of the Dex Deployment: changes with the user, so Dex restarts and reads the new hash
DEX_CHECKSUM_ANNOTATION = "nga4m.platform/dex-user-checksum"


def _dex_config(doc: dict):
    """The parsed Dex configuration of a ConfigMap that defines static passwords, else None."""
    if doc.get("kind") != "ConfigMap" or doc.get("apiVersion") != "v1":
        return None
    raw = (doc.get("data") or {}).get(DEX_CONFIG_KEY)
    if not isinstance(raw, str) or "staticPasswords" not in raw or yaml is None:
        return None
    try:
        cfg = yaml.load(raw, Loader=_LOADER)  # noqa: S506 - SafeLoader/CSafeLoader
    except yaml.YAMLError:
        return None
    if isinstance(cfg, dict) and isinstance(cfg.get("staticPasswords"), list) and cfg["staticPasswords"]:
        return cfg
    return None


def _pod_spec(doc: dict) -> dict:
    return ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}


def _secret_has_key(secret: dict, key: str) -> bool:
    return key in (secret.get("data") or {}) or key in (secret.get("stringData") or {})


def _dex_plan(docs: list) -> dict:
    """Where the password hash of each Dex static user lives in a build.

    Returns ``namespace`` (of the Dex ConfigMap, None without one), ``users`` (static
    users found), ``configmap`` (key of the ConfigMap), ``deployments`` (keys of the
    Deployments mounting it), ``targets`` (``("inline", cm_key, index)``,
    ``("secret", secret_key, data_key)`` or ``("env", deployment_key, container, env)``)
    and ``errors`` (why a hash cannot be traced, in words a user can act on).
    """
    plan = {"namespace": None, "users": 0, "configmap": None, "deployments": [], "targets": [], "errors": []}
    configs = [(d, cfg) for d in docs for cfg in [_dex_config(d)] if cfg is not None]
    if not configs:
        return plan
    plan["users"] = sum(len(cfg["staticPasswords"]) for _d, cfg in configs)
    if len(configs) > 1 or plan["users"] > 1:
        plan["errors"].append(
            f"the build defines {plan['users']} Dex static user(s) in {len(configs)} ConfigMap(s) "
            f"({', '.join(object_ref(d) for d, _c in configs)}); the role manages exactly one")
    cm, cfg = configs[0]
    ns = (cm.get("metadata") or {}).get("namespace") or "default"
    plan["namespace"] = ns
    plan["configmap"] = object_key(cm)
    by_key = {object_key(d): d for d in docs}
    deployments = [d for d in docs if d.get("kind") == "Deployment" and d.get("apiVersion") == "apps/v1"
                   and ((d.get("metadata") or {}).get("namespace") or "default") == ns
                   and any(((v or {}).get("configMap") or {}).get("name") == cm["metadata"]["name"]
                           for v in _pod_spec(d).get("volumes") or [])]
    plan["deployments"] = [object_key(d) for d in deployments]
    for index, entry in enumerate(cfg["staticPasswords"]):
        entry = entry if isinstance(entry, dict) else {}
        if "hash" in entry:
            plan["targets"].append(("inline", object_key(cm), index))
            continue
        var = entry.get("hashFromEnv")
        if not var:
            plan["errors"].append(f"Dex static user #{index} of {object_ref(cm)} has neither 'hash' nor 'hashFromEnv'")
            continue
        if not deployments:
            plan["errors"].append(f"no Deployment of the build mounts {object_ref(cm)}, so the Dex password (hashFromEnv {var}) cannot be traced")
            continue
        found = []
        for dep in deployments:
            for ci, container in enumerate(_pod_spec(dep).get("containers") or []):
                env_hit = False
                for ei, env in enumerate(container.get("env") or []):
                    if (env or {}).get("name") != var:
                        continue
                    env_hit = True
                    ref = (env.get("valueFrom") or {}).get("secretKeyRef") or {}
                    if "value" in env:
                        found.append(("env", object_key(dep), ci, ei))
                    elif ref.get("name") and ref.get("key"):
                        skey = ("", "Secret", ns, ref["name"])
                        if skey in by_key and _secret_has_key(by_key[skey], ref["key"]):
                            found.append(("secret", skey, ref["key"]))
                        else:
                            plan["errors"].append(f"Dex reads {var} from Secret {ns}/{ref['name']} key {ref['key']}, "
                                                  "which the build does not hold")
                    else:
                        plan["errors"].append(f"{object_ref(dep)} sets {var} from a source the role cannot rewrite")
                if not env_hit:
                    for src in container.get("envFrom") or []:
                        name = ((src or {}).get("secretRef") or {}).get("name")
                        skey = ("", "Secret", ns, name)
                        if name and skey in by_key and _secret_has_key(by_key[skey], var):
                            found.append(("secret", skey, var))
        if not found and not plan["errors"]:
            plan["errors"].append(f"no container of {', '.join(object_ref(d) for d in deployments)} defines {var} (hashFromEnv)")
        for target in found:
            if target not in plan["targets"]:
                plan["targets"].append(target)
    return plan


def dex_report(docs) -> dict:
    """``{"namespace", "users", "error"}``: the Dex static users of a build (``error`` empty when they can be replaced)."""
    plan = _dex_plan(_parse_documents(docs))
    return {"namespace": plan["namespace"], "users": plan["users"], "error": "; ".join(plan["errors"])}


def set_dex_user(phases: dict, email: str, password_hash: str) -> dict:
    """Return ``phases`` (from :func:`split_phases`) with the Dex static user set to ``email`` / ``password_hash``.

    The objects that carry the hash (the Secret Dex reads it from, or the
    ConfigMap / Deployment holding it inline) move out of their phase into
    ``dex_objects``, so the role applies them in a task that logs nothing; the
    Dex Deployment gets the pod template annotation ``nga4m.platform/dex-user-checksum``
    so a changed user restarts Dex. The build's Profiles (kubeflow.org) owned by the
    build's static user get ``email`` as their owner (names in ``dex_profiles``), so
    the example user's namespace follows the login. Raises NGA4MError when the build's static
    password cannot be traced: the upstream default must never be applied unnoticed.
    """
    # plain str: the YAML dumper refuses str subclasses (Ansible's tagged strings)
    email, password_hash = str(email or ""), str(password_hash or "")
    if not email.strip() or "@" not in email:
        raise NGA4MError("the Dex user email must be an address such as user@example.com")
    if not password_hash.startswith("$2"):
        raise NGA4MError("the Dex password hash must be a bcrypt hash ($2a$/$2b$/$2y$)")
    names = ("namespaces", "crds", "cert_manager", "rest")
    docs = [d for name in names for d in phases.get(name) or []]
    plan = _dex_plan(docs)
    if plan["errors"]:
        raise NGA4MError("cannot replace the Dex static password of the build: " + "; ".join(plan["errors"]))
    out = {k: (list(v) if k in names else v) for k, v in phases.items()}
    out["dex_objects"] = []
    out["dex_profiles"] = []
    if not plan["users"]:
        return out
    changed: dict = {}

    def editable(key):
        if key not in changed:
            changed[key] = copy.deepcopy(next(d for d in docs if object_key(d) == key))
        return changed[key]

    cm = editable(plan["configmap"])
    cfg = yaml.load(cm["data"][DEX_CONFIG_KEY], Loader=_LOADER)  # noqa: S506 - SafeLoader/CSafeLoader
    entry = cfg["staticPasswords"][0]
    built_email = entry.get("email")
    rewrite = built_email != email
    entry["email"] = email
    # the build's Profiles owned by its static user (the example user's namespace) follow the login
    out["dex_profiles"] = []
    for doc in docs:
        owner = (doc.get("spec") or {}).get("owner") or {}
        if (doc.get("kind") == "Profile" and str(doc.get("apiVersion", "")).startswith("kubeflow.org/")
                and owner.get("kind") == "User" and built_email and owner.get("name") == built_email):
            out["dex_profiles"].append(doc["metadata"]["name"])
            if built_email != email:
                editable(object_key(doc))["spec"]["owner"]["name"] = email
    hash_carriers = set()
    for target in plan["targets"]:
        if target[0] == "inline":
            cfg["staticPasswords"][target[2]]["hash"] = password_hash
            rewrite = True
            hash_carriers.add(target[1])
        elif target[0] == "secret":
            secret = editable(target[1])
            secret.setdefault("data", {})[target[2]] = base64.b64encode(password_hash.encode()).decode()
            if target[2] in (secret.get("stringData") or {}):
                del secret["stringData"][target[2]]
                if not secret["stringData"]:
                    del secret["stringData"]
            hash_carriers.add(target[1])
        else:
            env = _pod_spec(editable(target[1]))["containers"][target[2]]["env"]
            env[target[3]] = {"name": env[target[3]]["name"], "value": password_hash}
            hash_carriers.add(target[1])
    if rewrite:
        cm["data"][DEX_CONFIG_KEY] = yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False)
    checksum = hashlib.sha256(f"{email}\n{password_hash}".encode()).hexdigest()[:16]
    for key in plan["deployments"]:
        template = editable(key).setdefault("spec", {}).setdefault("template", {})
        template.setdefault("metadata", {}).setdefault("annotations", {})[DEX_CHECKSUM_ANNOTATION] = checksum
    for name in names:
        kept = []
        for doc in out[name]:
            key = object_key(doc)
            if key in hash_carriers:
                out["dex_objects"].append(changed[key])
            else:
                kept.append(changed.get(key, doc))
        out[name] = kept
    return out

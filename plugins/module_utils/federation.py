# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render Prometheus federation scrape configs for secondary clusters (SCs).

Pure Python (stdlib + PyYAML), no Ansible imports: the
``nga4m.platform.prometheus_federation`` module is a thin wrapper and unit tests
call these functions directly.

Every problem found in the input is collected and raised together as one
:class:`NGA4MError` whose message names the cluster and the field and says how
to fix it.
"""

from __future__ import annotations

import copy
import re
import textwrap
from urllib.parse import urlsplit

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None

try:
    import promql_parser
except ImportError:  # pragma: no cover - a declared dependency (requirements.txt); the check says what to install
    promql_parser = None
    _Dumper = None
else:

    # libyaml's emitter is ~10x faster than the pure-Python one (1,000 SCs: ~0.2 s instead of ~2 s).
    class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # pylint: disable=too-many-ancestors
        """SafeDumper writing multi-line strings as literal blocks (readable Secret stringData)."""

    def _str_presenter(dumper, data):
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    _Dumper.add_representer(str, _str_presenter)

from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError
from ansible_collections.nga4m.platform.plugins.module_utils.names import is_dns1123_label, is_dns1123_subdomain

FORMATS = ("helm_values", "scrape_configs", "prometheus_config")
SCHEMES = ("http", "https")
DEFAULT_JOB_PREFIX = "federate"
DEFAULT_CLUSTER_LABEL = "cluster"
DEFAULT_NAMESPACE_LABEL = "namespace"
DEFAULT_SCRAPE_INTERVAL = "30s"
DEFAULT_SCRAPE_TIMEOUT = "10s"
DEFAULT_SECRET_NAME = "additional-scrape-configs"
DEFAULT_SECRET_NAMESPACE = "monitoring"
DEFAULT_SECRET_KEY = "additional-scrape-configs.yaml"
HEADER = "# Rendered by nga4m.platform.prometheus_federation: edit the inventory, not this file.\n"

CLUSTER_KEYS = frozenset(
    (
        "name", "url", "scheme", "namespaces", "match", "match_scope", "scrape_interval", "scrape_timeout", "labels",
        "ca_file", "cert_file", "key_file", "insecure_skip_verify", "server_name",
        "username", "password", "password_file", "bearer_token", "credentials_file",
    )
)
SECRET_FIELDS = ("password", "bearer_token")
#: how raw match[] selectors relate to namespaces: narrowed to them (default), or federated as given
MATCH_SCOPES = ("namespaces", "any")
#: where a rendered scrape config holds an inline secret (section, key)
SECRET_PATHS = (("basic_auth", "password"), ("authorization", "credentials"))
#: what a returned scrape config or Secret holds instead of an inline secret
SECRET_MASK = "********"
SECRET_FILE_MODE = "0600"
"""Mode of ``dest`` when the rendered content holds an inline secret and no ``mode`` was given."""

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_JOB_PREFIX = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")
# Prometheus duration syntax (github.com/prometheus/common/model.ParseDuration).
_DURATION = re.compile(
    r"^(?:(?P<y>[0-9]+)y)?(?:(?P<w>[0-9]+)w)?(?:(?P<d>[0-9]+)d)?(?:(?P<h>[0-9]+)h)?"
    r"(?:(?P<m>[0-9]+)m)?(?:(?P<s>[0-9]+)s)?(?:(?P<ms>[0-9]+)ms)?$"
)
_UNIT_MS = {"y": 365 * 86400000, "w": 7 * 86400000, "d": 86400000, "h": 3600000, "m": 60000, "s": 1000, "ms": 1}
_RE2_ESCAPES = str.maketrans({ch: "\\" + ch for ch in "\\.+*?()|[]{}^$"})


# --------------------------------------------------------------------------- primitives


def parse_duration(value, field="duration"):
    """Return a Prometheus duration (``30s``, ``1m30s``, ``1h``) in milliseconds.

    Rejects unit-less numbers, unknown syntax and zero, with a message naming ``field``.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        raise NGA4MError(f"{field}: {value!r} is not a duration string; write it with a unit, e.g. '30s', '1m30s' or '1h'")
    text = value.strip()
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        raise NGA4MError(f"{field}: {value!r} has no unit; Prometheus needs one, e.g. '{text}s' for seconds")
    match = _DURATION.match(text) if text else None
    if match is None or not any(match.groupdict().values()):
        raise NGA4MError(
            f"{field}: {value!r} is not a Prometheus duration; use digits followed by units in the order "
            "y, w, d, h, m, s, ms, e.g. '30s', '1m30s', '1h'"
        )
    total = sum(int(num) * _UNIT_MS[unit] for unit, num in match.groupdict().items() if num)
    if total == 0:
        raise NGA4MError(f"{field}: {value!r} is zero; give a positive duration such as '30s'")
    return total


def check_label_name(name, field="label name"):
    """Check a Prometheus label name (``[a-zA-Z_][a-zA-Z0-9_]*``, no reserved ``__`` prefix)."""
    if not isinstance(name, str) or not _LABEL_NAME.match(name):
        raise NGA4MError(
            f"{field}: {name!r} is not a valid Prometheus label name; use letters, digits and '_' "
            "and start with a letter or '_', e.g. 'cluster'"
        )
    if name.startswith("__"):
        raise NGA4MError(f"{field}: {name!r} starts with '__', which Prometheus reserves for internal labels; drop the leading underscores")
    return name


def check_label_value(value, field="label value"):
    """Check a label value: a non-empty string without line breaks."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise NGA4MError(f"{field}: {value!r} is a {type(value).__name__}, not a string; quote it in YAML, e.g. \"{value}\"")
    if not value.strip():
        raise NGA4MError(f"{field}: the value is empty; an empty label value removes the label in Prometheus, give a non-empty string")
    if value != value.strip() or any(ch in value for ch in "\r\n\t"):
        raise NGA4MError(f"{field}: {value!r} has leading/trailing whitespace or a line break; remove it")
    return value


def check_namespace(name, field="namespace"):
    """Check a Kubernetes namespace name (DNS-1123 label)."""
    if not is_dns1123_label(name):
        raise NGA4MError(
            f"{field}: {name!r} is not a Kubernetes namespace name (DNS-1123 label: at most 63 lower-case "
            "letters, digits and '-', starting and ending with a letter or digit)"
        )
    return name


def _promql_string(text):
    """Quote ``text`` as a PromQL double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _re2_escape(text):
    return text.translate(_RE2_ESCAPES)


def namespace_selector(namespaces, label=DEFAULT_NAMESPACE_LABEL):
    """Return ``{<label>=~"ns1|ns2"}`` for sorted, de-duplicated ``namespaces``.

    Prometheus anchors regex matchers, so ``models`` never matches ``models-dev``;
    regex metacharacters in names are escaped.
    """
    names = sorted(set(namespaces))
    if not names:
        raise NGA4MError("namespace_selector: no namespaces given")
    regex = "|".join(_re2_escape(name) for name in names)
    return "{" + label + "=~" + _promql_string(regex) + "}"


def check_series_selector(selector, field="match"):
    """Check a federation ``match[]`` selector with a real PromQL parser (``promql-parser``).

    Accepts what Prometheus' /federate accepts: one vector selector (``metric``,
    ``{l="v",...}`` or ``metric{...}``) with at least one matcher that does not match the
    empty string and valid (RE2-style) regular expressions; no functions, ranges, offsets,
    ``@`` or operators. Returns the selector stripped of surrounding whitespace.
    """
    if not isinstance(selector, str) or not selector.strip():
        raise NGA4MError(f"{field}: {selector!r} is not a series selector; write e.g. 'up' or '{{job=\"kserve\"}}'")
    if promql_parser is None:
        raise NGA4MError(
            "checking match[] selectors needs the Python package promql-parser where this module runs: "
            "pip install promql-parser (in the execution environment: it is in the collection's requirements.txt)"
        )
    text = selector.strip()
    try:
        expr = promql_parser.parse(text)
    except ValueError as err:
        if "non-empty matcher" in str(err):
            raise NGA4MError(
                f"{field}: {selector!r} would match every series; Prometheus needs a metric name or at least one "
                "matcher that does not match the empty string, e.g. '{namespace=~\"models\"}'"
            ) from None
        raise NGA4MError(f"{field}: {selector!r} is not a valid PromQL series selector: {err}") from None
    if type(expr).__name__ != "VectorSelector" or expr.offset is not None or expr.at is not None:
        raise NGA4MError(
            f"{field}: {selector!r} is not a PromQL series selector; federation accepts only a metric name "
            "and/or label matchers in braces, e.g. 'up' or 'nv_inference_count{namespace=\"models\"}' "
            "(no functions, ranges, offsets or operators)"
        )
    return text


def _narrow(selector, matcher):
    """``selector`` (checked) with one more label matcher: ``up`` -> ``up{m}``, ``x{a="b"}`` -> ``x{a="b",m}``."""
    if not selector.endswith("}"):
        return f"{selector}{{{matcher}}}"
    brace = selector.index("{")  # a metric name holds no brace: the first one opens the matchers
    body = selector[brace + 1:-1].strip().rstrip(",").strip()
    return f"{selector[:brace]}{{{body + ',' if body else ''}{matcher}}}"


def parse_prometheus_url(url, scheme=None, field="url"):
    """Split a Prometheus base URL into ``(scheme, 'host:port', metrics_path)``.

    ``https://prom.sc1.example/prometheus`` gives
    ``('https', 'prom.sc1.example:443', '/prometheus/federate')``; ``scheme``
    (``http``/``https``) overrides the URL's scheme.
    """
    if not isinstance(url, str) or not url.strip():
        raise NGA4MError(f"{field}: the Prometheus URL is empty; give e.g. 'https://prometheus.sc1.example.com'")
    if url != url.strip() or any(ch.isspace() for ch in url):
        raise NGA4MError(f"{field}: {url!r} contains whitespace; remove it")
    if "://" not in url:
        raise NGA4MError(f"{field}: {url!r} has no scheme; write it as 'http://{url}' or 'https://{url}'")
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise NGA4MError(f"{field}: scheme {parts.scheme!r} in {url!r} is not supported; use http:// or https://")
    if not parts.hostname:
        raise NGA4MError(f"{field}: {url!r} has no host; write it as '{parts.scheme}://<host>[:port][/path]'")
    if parts.username is not None or parts.password is not None:
        raise NGA4MError(f"{field}: credentials in the URL are not supported; remove them and use username/password_file or credentials_file")
    if parts.query or parts.fragment:
        raise NGA4MError(f"{field}: {url!r} has a query string or fragment; give only scheme, host, port and path prefix")
    if scheme is not None and scheme not in SCHEMES:
        raise NGA4MError(f"scheme: {scheme!r} is not supported; use 'http' or 'https'")
    try:
        port = parts.port
    except ValueError:
        raise NGA4MError(f"{field}: the port in {url!r} is not a number between 1 and 65535") from None
    effective = scheme or parts.scheme
    if port is None:
        port = 443 if effective == "https" else 80
    elif port == 0:
        raise NGA4MError(f"{field}: port 0 in {url!r} is not a usable port")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    path = parts.path.rstrip("/")
    if not path.endswith("/federate"):
        path += "/federate"
    return effective, f"{host}:{port}", path


# Port of the kube-prometheus-stack chart's Prometheus Service (prometheus.service.port).
CHART_PROMETHEUS_PORT = 9090


def exposure_problems(targets) -> list:
    """Why a secondary cluster's federation URL cannot reach its Prometheus as that cluster exposes it.

    ``targets``: ``[{name, url, service_type, node_port, ingress_enabled, ingress_host, ingress_tls, check}]``,
    one per SC, from its inventory variables. The URL must follow from the exposure: with the
    ingress on, ``https://<ingress host>`` (``http://`` without a TLS Secret) on the scheme's
    default port; with it off, plain ``http://`` on the NodePort (any node address) or on the
    chart's Service port 9090 of a LoadBalancer; a ClusterIP Service without an ingress is
    not reachable from another cluster. ``check: false`` skips a target (something else,
    such as a proxy, serves its URL). Returns one message per problem, naming the cluster and
    what to set; an empty list when every URL fits.
    """
    problems = []
    for target in targets or []:
        if not target.get("check", True) or not target.get("url"):
            continue
        name, url = target.get("name"), str(target["url"])
        escape = (f"or set kube_prometheus_stack_federation_url_check: false on {name} when something else "
                  "(a proxy, a tunnel) serves that URL")
        try:
            scheme, hostport, _path = parse_prometheus_url(url, field=f"{name}: federation URL")
        except NGA4MError as exc:
            problems.append(str(exc))
            continue
        host, port = hostport.rsplit(":", 1)
        port = int(port)
        explicit_port = urlsplit(url).port is not None
        if target.get("ingress_enabled"):
            ingress_host = str(target.get("ingress_host") or "")
            want = "https" if target.get("ingress_tls") else "http"
            default_port = 443 if want == "https" else 80
            if host.lower() != ingress_host.lower() or scheme != want or port != default_port:
                problems.append(
                    f"{name}: the federation URL {url} does not reach its Prometheus, which {name} exposes through the ingress "
                    f"{want}://{ingress_host} (kube_prometheus_stack_prometheus_ingress_host"
                    f"{', TLS Secret ' + 'set' if want == 'https' else ', no TLS Secret'}): leave kube_prometheus_stack_federation_url "
                    f"and prometheus_url unset to federate {want}://{ingress_host}, or set them to it; {escape}")
            continue
        service_type = target.get("service_type") or "NodePort"
        if service_type == "ClusterIP":
            problems.append(
                f"{name}: the federation URL {url} cannot reach its Prometheus: {name} exposes it as a ClusterIP Service with "
                "the ingress off, which no other cluster reaches. Enable the ingress (kube_prometheus_stack_prometheus_ingress_enabled, "
                f"_host, _tls_secret) or use a NodePort or LoadBalancer Service; {escape}")
            continue
        want_port = int(target.get("node_port") or 0) if service_type == "NodePort" else CHART_PROMETHEUS_PORT
        if scheme != "http" or not explicit_port or port != want_port:
            where = (f"a NodePort Service on port {want_port} (kube_prometheus_stack_prometheus_node_port)" if service_type == "NodePort"
                     else f"a LoadBalancer Service on port {want_port}")
            address = "<node address>" if service_type == "NodePort" else "<load balancer address>"
            problems.append(
                f"{name}: the federation URL {url} does not reach its Prometheus: {name} exposes it as {where} with the ingress off, "
                f"serving plain HTTP, so the URL must be http://{address}:{want_port}; or enable the ingress "
                f"(kube_prometheus_stack_prometheus_ingress_enabled, _host, _tls_secret) to federate https://<ingress host>; {escape}")
    return problems


# --------------------------------------------------------------------------- rendering


def _as_list(value, field):
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise NGA4MError(f"{field}: expected a list of strings, got {type(value).__name__}")


class _Problems:
    def __init__(self):
        self.items = []

    def check(self, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except NGA4MError as err:
            self.items.append(str(err))
            return None

    def add(self, msg):
        self.items.append(msg)

    def raise_if_any(self):
        if len(self.items) == 1:
            raise NGA4MError(self.items[0])
        if self.items:
            raise NGA4MError(f"{len(self.items)} problems: " + "; ".join(f"({i}) {m}" for i, m in enumerate(self.items, 1)))


def _given(value):
    return value is not None and value != ""


def _render_one(cluster, index, settings, problems):
    """Render one scrape config (or record problems and return None)."""
    if not isinstance(cluster, dict):
        problems.add(f"clusters[{index}]: expected a mapping with at least 'name' and 'url', got {type(cluster).__name__}")
        return None
    name = cluster.get("name")
    where = f"cluster {name!r}" if isinstance(name, str) and name.strip() else f"clusters[{index}]"
    before = len(problems.items)
    unknown = sorted(set(cluster) - CLUSTER_KEYS)
    if unknown:
        problems.add(f"{where}: unknown option(s) {', '.join(unknown)}; supported: {', '.join(sorted(CLUSTER_KEYS))}")
    problems.check(check_label_value, name, f"{where}: name (the {settings['cluster_label']} label value)")

    url = cluster.get("url")
    if url is None:
        problems.add(f"{where}: url is missing; give the SC Prometheus base URL, e.g. 'https://prometheus.sc1.example.com'")
        target = None
    else:
        target = problems.check(parse_prometheus_url, url, cluster.get("scheme"), f"{where}: url")

    # Durations: per-cluster values override the global ones.
    interval = cluster.get("scrape_interval") or settings["scrape_interval"]
    timeout = cluster.get("scrape_timeout") or settings["scrape_timeout"]
    src_i = "scrape_interval" if cluster.get("scrape_interval") else "scrape_interval (global)"
    interval_ms = problems.check(parse_duration, interval, f"{where}: {src_i}")
    if timeout is None:
        timeout = interval if interval_ms is not None and interval_ms < 10000 else DEFAULT_SCRAPE_TIMEOUT
    else:
        src_t = "scrape_timeout" if cluster.get("scrape_timeout") else "scrape_timeout (global)"
        timeout_ms = problems.check(parse_duration, timeout, f"{where}: {src_t}")
        if interval_ms and timeout_ms and timeout_ms > interval_ms:
            problems.add(
                f"{where}: scrape_timeout {timeout} is longer than scrape_interval {interval}; "
                "Prometheus refuses that, lower scrape_timeout or raise scrape_interval"
            )

    # Selectors: namespaces and raw match[] selectors, each overriding its global default.
    selectors = []
    namespaces = cluster.get("namespaces")
    namespaces = settings["namespaces"] if namespaces is None else problems.check(_as_list, namespaces, f"{where}: namespaces")
    valid_ns = []
    for i, namespace in enumerate(namespaces or []):
        if problems.check(check_namespace, namespace, f"{where}: namespaces[{i}]") is not None:
            valid_ns.append(namespace)
    if valid_ns:
        selectors.append(namespace_selector(valid_ns, settings["namespace_label"]))
    matches = cluster.get("match")
    matches = settings["match"] if matches is None else problems.check(_as_list, matches, f"{where}: match")
    for i, selector in enumerate(matches or []):
        checked = problems.check(check_series_selector, selector, f"{where}: match[{i}]")
        if checked is not None and checked not in selectors:
            selectors.append(checked)
    scope = cluster.get("match_scope") or settings["match_scope"]
    if scope not in MATCH_SCOPES:
        problems.add(f"{where}: match_scope {scope!r} is not one of {', '.join(MATCH_SCOPES)}")
    elif scope == "namespaces" and valid_ns and len(selectors) > 1:
        # Raw selectors AND the namespaces: only the series they pick inside those namespaces.
        scoped = namespace_selector(valid_ns, settings["namespace_label"])[1:-1]
        selectors = [_narrow(selector, scoped) for selector in selectors[1:]]
    if not namespaces and not matches:
        problems.add(
            f"{where}: no selector to federate; set namespaces (e.g. ['models']) or match "
            "(e.g. ['{job=\"kserve\"}']) on the cluster or globally; federating everything is not allowed"
        )

    # Extra target labels.
    labels = {}
    extra = cluster.get("labels") or {}
    if not isinstance(extra, dict):
        problems.add(f"{where}: labels must be a mapping of label name to string value")
        extra = {}
    for key in sorted(extra, key=str):
        if problems.check(check_label_name, key, f"{where}: labels key") is None:
            continue
        if key == settings["cluster_label"]:
            problems.add(f"{where}: labels must not set {key!r}; that label is the cluster name, change 'name' instead")
            continue
        if problems.check(check_label_value, extra[key], f"{where}: labels.{key}") is not None:
            labels[key] = extra[key]

    tls = _render_tls(cluster, where, target[0] if target else None, problems)
    auth = _render_auth(cluster, where, problems)

    if len(problems.items) > before:
        return None
    scheme, address, metrics_path = target
    job = {
        "job_name": f"{settings['job_prefix']}-{name}",
        "honor_labels": True,
        "metrics_path": metrics_path,
        "scheme": scheme,
        "scrape_interval": interval,
        "scrape_timeout": timeout,
        "params": {"match[]": selectors},
        "static_configs": [{"targets": [address], "labels": {settings["cluster_label"]: name, **labels}}],
    }
    if tls:
        job["tls_config"] = tls
    job.update(auth)
    return job


def _render_tls(cluster, where, scheme, problems):
    tls = {}
    for key in ("ca_file", "cert_file", "key_file", "server_name"):
        value = cluster.get(key)
        if _given(value):
            if not isinstance(value, str):
                problems.add(f"{where}: {key} must be a string (a path inside the Prometheus pod)")
                continue
            tls[key] = value
    insecure = cluster.get("insecure_skip_verify")
    if insecure is not None:
        if not isinstance(insecure, bool):
            problems.add(f"{where}: insecure_skip_verify must be true or false, got {insecure!r}")
        elif insecure:
            tls["insecure_skip_verify"] = True
    if ("cert_file" in tls) != ("key_file" in tls):
        problems.add(f"{where}: cert_file and key_file go together for client certificates; set both or neither")
    if tls and scheme == "http":
        problems.add(f"{where}: TLS options ({', '.join(sorted(tls))}) are set but the scheme is http; use an https:// URL or remove them")
    return tls


def _render_auth(cluster, where, problems):
    username = cluster.get("username")
    password = cluster.get("password")
    password_file = cluster.get("password_file")
    token = cluster.get("bearer_token")
    credentials_file = cluster.get("credentials_file")
    basic = any(_given(v) for v in (username, password, password_file))
    bearer = any(_given(v) for v in (token, credentials_file))
    for key in ("username", "password", "password_file", "bearer_token", "credentials_file"):
        if _given(cluster.get(key)) and not isinstance(cluster.get(key), str):
            problems.add(f"{where}: {key} must be a string")
            return {}
    if basic and bearer:
        problems.add(
            f"{where}: both basic auth (username/password) and a bearer token are set; Prometheus accepts one "
            "authentication method per job, keep either username+password_file or credentials_file"
        )
        return {}
    if basic:
        if not _given(username):
            problems.add(f"{where}: password/password_file is set without username; add username")
            return {}
        if _given(password) and _given(password_file):
            problems.add(f"{where}: password and password_file are both set; keep one (password_file is preferred)")
            return {}
        if not _given(password) and not _given(password_file):
            problems.add(f"{where}: username {username!r} has no password; set password_file (preferred) or password")
            return {}
        auth = {"username": username}
        auth.update({"password_file": password_file} if _given(password_file) else {"password": password})
        return {"basic_auth": auth}
    if bearer:
        if _given(token) and _given(credentials_file):
            problems.add(f"{where}: bearer_token and credentials_file are both set; keep one (credentials_file is preferred)")
            return {}
        auth = {"type": "Bearer"}
        auth.update({"credentials_file": credentials_file} if _given(credentials_file) else {"credentials": token})
        return {"authorization": auth}
    return {}


def render_scrape_configs(
    clusters,
    job_prefix=DEFAULT_JOB_PREFIX,
    cluster_label=DEFAULT_CLUSTER_LABEL,
    namespace_label=DEFAULT_NAMESPACE_LABEL,
    scrape_interval=DEFAULT_SCRAPE_INTERVAL,
    scrape_timeout=None,
    namespaces=None,
    match=None,
    match_scope="namespaces",
):
    """Return one federation scrape config per cluster, sorted by cluster name.

    ``clusters`` is a list of mappings (see ``CLUSTER_KEYS``); ``scrape_interval``,
    ``scrape_timeout``, ``namespaces`` and ``match`` are global defaults that a
    cluster's own value overrides (a cluster's ``namespaces: []`` means none).
    ``match_scope`` ``namespaces`` (default) narrows each raw ``match`` selector to the
    cluster's namespaces (Prometheus ORs ``match[]``, so a raw selector would otherwise
    federate series of every namespace); ``any`` federates raw selectors as given, beside
    the namespace selector.
    Without any ``scrape_timeout`` the timeout is ``min(10s, interval)``.
    Raises :class:`NGA4MError` listing every problem found.
    """
    problems = _Problems()
    if not isinstance(clusters, (list, tuple)):
        raise NGA4MError(f"clusters: expected a list of cluster mappings, got {type(clusters).__name__}")
    if not clusters:
        raise NGA4MError("clusters: the list is empty; give at least one secondary cluster (name and url)")
    if not isinstance(job_prefix, str) or not _JOB_PREFIX.match(job_prefix):
        problems.add(
            f"job_prefix: {job_prefix!r} is not a valid job name prefix; use letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit, e.g. 'federate'"
        )
    problems.check(check_label_name, cluster_label, "cluster_label")
    problems.check(check_label_name, namespace_label, "namespace_label")
    global_ns = problems.check(_as_list, namespaces, "namespaces")
    global_match = problems.check(_as_list, match, "match")
    problems.raise_if_any()
    settings = {
        "job_prefix": job_prefix,
        "cluster_label": cluster_label,
        "namespace_label": namespace_label,
        "scrape_interval": scrape_interval or DEFAULT_SCRAPE_INTERVAL,
        "scrape_timeout": scrape_timeout or None,
        "namespaces": global_ns,
        "match": global_match,
        "match_scope": match_scope or "namespaces",
    }
    seen = {}
    jobs = []
    for index, cluster in enumerate(clusters):
        name = cluster.get("name") if isinstance(cluster, dict) else None
        if isinstance(name, str) and name:
            # Names differing only in case would give two jobs and two cluster label values for what reads as one SC.
            if name.casefold() in seen:
                first, first_name = seen[name.casefold()]
                same = "duplicate name" if first_name == name else f"name differs from {first_name!r} only in case"
                problems.add(
                    f"cluster {name!r}: {same} (entries {first} and {index}); each SC needs a unique "
                    "name, it becomes the job name and the cluster label"
                )
                continue
            seen[name.casefold()] = (index, name)
        job = _render_one(cluster, index, settings, problems)
        if job is not None:
            jobs.append(job)
    # Two SCs federated from one endpoint would put every series on the PC twice, under two cluster labels.
    endpoints = {}
    for job in jobs:
        endpoint = (job["scheme"], job["static_configs"][0]["targets"][0].lower(), job["metrics_path"])
        name = job["static_configs"][0]["labels"][cluster_label]
        if endpoint in endpoints:
            problems.add(
                f"cluster {name!r}: its url is the same Prometheus as cluster {endpoints[endpoint]!r}'s "
                f"({endpoint[0]}://{endpoint[1]}{endpoint[2]}); the PC would ingest every series twice under two "
                f"{cluster_label} labels; give each SC its own Prometheus URL"
            )
        else:
            endpoints[endpoint] = name
    problems.raise_if_any()
    jobs.sort(key=lambda job: job["job_name"])
    return jobs


# --------------------------------------------------------------------------- outputs


def has_inline_secrets(clusters):
    """Whether any cluster carries an inline password or bearer token (not a *_file)."""
    return any(isinstance(c, dict) and any(_given(c.get(key)) for key in SECRET_FIELDS) for c in clusters or [])


def redact_jobs(scrape_configs, marker=None):
    """A copy of ``scrape_configs`` with every inline secret replaced.

    ``marker(job_name, section, value)`` gives the replacement (default: ``SECRET_MASK``).
    Module results carry only redacted configs: Ansible's no_log masking matches the exact
    string, which a YAML- or JSON-escaped password (quotes, backslashes, newlines) escapes.
    """
    out = copy.deepcopy(scrape_configs)
    for job in out if isinstance(out, list) else []:
        for section, key in SECRET_PATHS:
            block = job.get(section) if isinstance(job, dict) else None
            if isinstance(block, dict) and key in block:
                block[key] = marker(job.get("job_name"), section, block[key]) if marker else SECRET_MASK
    return out


def _jobs_in(document):
    """The scrape config list of a loaded file in any of ``FORMATS``, else None."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        if isinstance(document.get("scrape_configs"), list):
            return document["scrape_configs"]
        spec = (document.get("prometheus") or {}).get("prometheusSpec") if isinstance(document.get("prometheus"), dict) else None
        if isinstance(spec, dict) and isinstance(spec.get("additionalScrapeConfigs"), list):
            return spec["additionalScrapeConfigs"]
    return None


def _secrets_of(scrape_configs):
    return {(job.get("job_name"), section): job[section][key] for job in scrape_configs or [] if isinstance(job, dict)
            for section, key in SECRET_PATHS if isinstance(job.get(section), dict) and key in job[section]}


def redacted_diff(before_text, after_jobs, fmt="helm_values"):
    """``(before, after)`` texts for --diff in which no inline secret appears, old or new.

    Each secret becomes a marker saying whether it changed, so a rotation shows as a changed
    line without either value. A previous file that cannot be read as scrape configs is not
    shown at all (it may hold secrets where this function would not look).
    """
    before_jobs = None
    if before_text:
        try:
            before_jobs = _jobs_in(yaml.safe_load(before_text))
        except yaml.YAMLError:
            before_jobs = None
    old, new = _secrets_of(before_jobs), _secrets_of(after_jobs)

    def state(name, section, other):
        if (name, section) not in other:
            return "(secret, not shown)"
        return "(secret, unchanged)" if old[(name, section)] == new[(name, section)] else "(secret, changed: not shown)"

    after = render_file_text(redact_jobs(after_jobs, lambda name, section, _v: state(name, section, old)), fmt)
    if not before_text:
        return "", after
    if before_jobs is None:
        return "# (the previous content is not shown: it is not a scrape config list this module wrote)\n", after
    if not old:
        return before_text, after
    before_doc = yaml.safe_load(before_text)
    redacted = redact_jobs(before_jobs, lambda name, section, _v: state(name, section, new))
    if isinstance(before_doc, list):
        before_doc = redacted
    elif "scrape_configs" in before_doc:
        before_doc["scrape_configs"] = redacted
    else:
        before_doc["prometheus"]["prometheusSpec"]["additionalScrapeConfigs"] = redacted
    return to_yaml(before_doc, header=before_text.startswith(HEADER)), after


def dest_file_mode(clusters, mode=None):
    """The mode to give the written file: ``mode`` when set, else ``SECRET_FILE_MODE`` when a
    cluster carries an inline secret (the file then holds it in clear text), else ``None``
    (the umask default)."""
    if mode is not None:
        return mode
    return SECRET_FILE_MODE if has_inline_secrets(clusters) else None


def build_document(scrape_configs, fmt="helm_values"):
    """Wrap scrape configs for a file: Helm values, a bare list or a Prometheus config."""
    if fmt == "helm_values":
        return {"prometheus": {"prometheusSpec": {"additionalScrapeConfigs": scrape_configs}}}
    if fmt == "scrape_configs":
        return scrape_configs
    if fmt == "prometheus_config":
        return {"scrape_configs": scrape_configs}
    raise NGA4MError(f"format: {fmt!r} is not supported; use one of {', '.join(FORMATS)}")


# format -> (keys above the list, indentation of the list)
_WRAPPERS = {
    "helm_values": ("prometheus:\n  prometheusSpec:\n    additionalScrapeConfigs:\n", "    "),
    "scrape_configs": ("", ""),
    "prometheus_config": ("scrape_configs:\n", "  "),
}


def render_file_text(scrape_configs, fmt="helm_values", list_text=None):
    """File content for ``fmt``: header, the wrapping keys, then the YAML list indented under them.

    ``list_text`` (``to_yaml(scrape_configs, header=False)``) may be passed in so the
    list is serialised once for both the file and the Secret; the result loads to
    ``build_document(scrape_configs, fmt)``.
    """
    if fmt not in _WRAPPERS:
        raise NGA4MError(f"format: {fmt!r} is not supported; use one of {', '.join(FORMATS)}")
    if list_text is None:
        list_text = to_yaml(scrape_configs, header=False)
    prefix, indent = _WRAPPERS[fmt]
    return HEADER + prefix + (textwrap.indent(list_text, indent) if indent else list_text)


def to_yaml(data, header=True):
    """Deterministic YAML text (insertion order, no line folding)."""
    if yaml is None:  # pragma: no cover
        raise NGA4MError("PyYAML is not installed on the Ansible controller; install it with 'pip install pyyaml'")
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 16)
    return (HEADER + text) if header else text


def render_secret(scrape_configs, name=DEFAULT_SECRET_NAME, namespace=DEFAULT_SECRET_NAMESPACE, key=DEFAULT_SECRET_KEY, list_text=None):
    """A Kubernetes Secret for kube-prometheus-stack's ``additionalScrapeConfigsSecret``.

    ``list_text`` is the already serialised list (``to_yaml(scrape_configs, header=False)``), if any.
    """
    problems = _Problems()
    if not is_dns1123_subdomain(name):
        problems.add(f"secret.name: {name!r} is not a valid Secret name (lower-case DNS subdomain, e.g. 'additional-scrape-configs')")
    problems.check(check_namespace, namespace, "secret.namespace")
    if not isinstance(key, str) or not _SECRET_KEY.match(key):
        problems.add(f"secret.key: {key!r} is not a valid Secret key; use letters, digits, '-', '_' and '.'")
    problems.raise_if_any()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": {key: to_yaml(scrape_configs, header=False) if list_text is None else list_text},
    }

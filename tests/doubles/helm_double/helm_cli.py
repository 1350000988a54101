"""helm TEST DOUBLE -- this is NOT helm (its implementation; ``helm`` next to this file runs it).

A recording stand-in for the ``helm`` binary, put first on PATH by emulated
test runs only, so that kubernetes.core.helm / helm_info / helm_repository
run against it and tests can assert the values each release was given
(see ``recorded.py`` next to this file and ``README.md``).

It never fetches or renders a chart, never creates Kubernetes objects and
never contacts an API server. It records chart references, versions and the
merged user-supplied values per cluster (API server URL of the selected
kubeconfig context), namespace and release under ``$HELM_DOUBLE_STATE_DIR``.
Commands or flags it does not implement fail with exit 1 and a message naming
them -- gaps are loud, never silently pretended.

Stdlib + PyYAML only. Start-up is kept small (a real helm binary starts in tens of
milliseconds): this module is imported by the ``helm`` launcher, so Python caches its
bytecode, and modules only some commands need (difflib, tarfile, shutil) are imported
where they are used.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import recorded as store  # noqa: E402  (shared state layout)
import yaml  # noqa: E402

PRETEND_VERSION = "v3.17.3"
DIFF_PLUGIN_ENV = "HELM_DOUBLE_DIFF_PLUGIN"
#: model of a chart's rollout: `upgrade --install --wait` that records a new revision
#: keeps it pending this many seconds (capped by --timeout) before it is deployed
WAIT_SECONDS_ENV = "HELM_DOUBLE_WAIT_SECONDS"
DIFF_PLUGIN_VERSION = "3.9.14"
DEFAULT_HISTORY_MAX = 10
DOUBLE_NOTE = "helm test double: no chart was fetched or rendered, no Kubernetes object was created"


class HelmError(Exception):
    """Printed as ``Error: <msg>`` on stderr, exit 1 (as helm does)."""


# --------------------------------------------------------------------------- flags

BOOL, STR, LIST, OPT = "bool", "str", "list", "opt"  # OPT: optional value (--dry-run[=server])

GLOBAL_FLAGS = {
    "kubeconfig": STR, "kube-context": STR, "namespace": STR, "kube-apiserver": STR,
    "kube-token": STR, "kube-as-user": STR, "kube-as-group": LIST, "kube-ca-file": STR,
    "kube-insecure-skip-tls-verify": BOOL, "kube-tls-server-name": STR, "debug": BOOL,
    "burst-limit": STR, "qps": STR, "registry-config": STR, "repository-config": STR,
    "repository-cache": STR, "content-cache": STR, "help": BOOL,
}
GLOBAL_SHORT = {"n": "namespace", "h": "help"}

CHART_FLAGS = {
    "version": STR, "repo": STR, "username": STR, "password": STR, "ca-file": STR,
    "cert-file": STR, "key-file": STR, "insecure-skip-tls-verify": BOOL, "plain-http": BOOL,
    "pass-credentials": BOOL, "keyring": STR, "verify": BOOL, "devel": BOOL,
}
VALUES_FLAGS = {
    "values": LIST, "set": LIST, "set-string": LIST, "set-json": LIST, "set-file": LIST,
    "set-literal": LIST,
}
DEPLOY_FLAGS = {
    **CHART_FLAGS, **VALUES_FLAGS,
    "atomic": BOOL, "wait": BOOL, "wait-for-jobs": BOOL, "timeout": STR, "create-namespace": BOOL,
    "dry-run": OPT, "description": STR, "disable-openapi-validation": BOOL, "skip-crds": BOOL,
    "force": BOOL, "no-hooks": BOOL, "post-renderer": STR, "post-renderer-args": LIST,
    "render-subchart-notes": BOOL, "history-max": STR, "dependency-update": BOOL,
    "skip-schema-validation": BOOL, "take-ownership": BOOL, "labels": STR, "enable-dns": BOOL,
    "hide-notes": BOOL, "hide-secret": BOOL, "output": STR, "cleanup-on-fail": BOOL,
}
DEPLOY_SHORT = {"f": "values", "o": "output", "l": "labels"}
OUTPUT = {"output": STR}

LIST_FLAGS = {
    "all": BOOL, "all-namespaces": BOOL, "deployed": BOOL, "failed": BOOL, "pending": BOOL,
    "superseded": BOOL, "uninstalled": BOOL, "uninstalling": BOOL, "filter": STR, "output": STR,
    "short": BOOL, "max": STR, "offset": STR, "reverse": BOOL, "date": BOOL, "no-headers": BOOL,
    "selector": STR, "time-format": STR,
}
LIST_SHORT = {"a": "all", "A": "all-namespaces", "f": "filter", "o": "output", "q": "short",
              "m": "max", "r": "reverse", "d": "date", "l": "selector"}

# command path -> (flags, shorthands, min args, max args (None = unlimited))
COMMANDS = {
    ("version",): ({"short": BOOL, "client": BOOL, "template": STR}, {"c": "client"}, 0, 0),
    ("double-info",): ({}, {}, 0, 0),
    ("list",): (LIST_FLAGS, LIST_SHORT, 0, 0),
    ("upgrade",): ({**DEPLOY_FLAGS, "install": BOOL, "reset-values": BOOL, "reuse-values": BOOL,
                    "reset-then-reuse-values": BOOL}, {**DEPLOY_SHORT, "i": "install"}, 2, 2),
    ("install",): ({**DEPLOY_FLAGS, "replace": BOOL, "generate-name": BOOL, "name-template": STR},
                   {**DEPLOY_SHORT, "g": "generate-name"}, 1, 2),
    ("uninstall",): ({"keep-history": BOOL, "no-hooks": BOOL, "wait": BOOL, "timeout": STR,
                      "dry-run": BOOL, "description": STR, "cascade": STR, "ignore-not-found": BOOL},
                     {}, 1, None),
    ("rollback",): ({"wait": BOOL, "wait-for-jobs": BOOL, "timeout": STR, "force": BOOL,
                     "no-hooks": BOOL, "dry-run": OPT, "cleanup-on-fail": BOOL, "history-max": STR,
                     "recreate-pods": BOOL}, {}, 1, 2),
    ("status",): ({"output": STR, "revision": STR, "show-desc": BOOL, "show-resources": BOOL},
                  {"o": "output"}, 1, 1),
    ("history",): ({"output": STR, "max": STR}, {"o": "output"}, 1, 1),
    ("get", "values"): ({"output": STR, "all": BOOL, "revision": STR}, {"o": "output", "a": "all"}, 1, 1),
    ("get", "manifest"): ({"revision": STR}, {}, 1, 1),
    ("get", "notes"): ({"revision": STR}, {}, 1, 1),
    ("get", "hooks"): ({"revision": STR}, {}, 1, 1),
    ("get", "metadata"): ({"revision": STR, "output": STR}, {"o": "output"}, 1, 1),
    ("show", "chart"): (CHART_FLAGS, {}, 1, 1),
    ("show", "values"): ({**CHART_FLAGS, "jsonpath": STR}, {}, 1, 1),
    ("show", "readme"): (CHART_FLAGS, {}, 1, 1),
    ("show", "crds"): (CHART_FLAGS, {}, 1, 1),
    ("repo", "add"): ({"username": STR, "password": STR, "password-stdin": BOOL, "pass-credentials": BOOL,
                       "force-update": BOOL, "insecure-skip-tls-verify": BOOL, "ca-file": STR,
                       "cert-file": STR, "key-file": STR, "no-update": BOOL, "allow-deprecated-repos": BOOL,
                       "timeout": STR}, {}, 2, 2),
    ("repo", "list"): (OUTPUT, {"o": "output"}, 0, 0),
    ("repo", "update"): ({"fail-on-repo-update-fail": BOOL, "timeout": STR}, {}, 0, None),
    ("repo", "remove"): ({}, {}, 1, None),
    ("plugin", "list"): ({"type": STR}, {}, 0, 0),
    ("dependency", "update"): ({"skip-refresh": BOOL, "verify": BOOL, "keyring": STR}, {}, 0, 1),
    ("dependency", "build"): ({"skip-refresh": BOOL, "verify": BOOL, "keyring": STR}, {}, 0, 1),
    ("dependency", "list"): ({"max-col-width": STR}, {}, 0, 1),
    ("diff", "upgrade"): ({**DEPLOY_FLAGS, "reset-values": BOOL, "reuse-values": BOOL,
                           "reset-then-reuse-values": BOOL, "install": BOOL, "allow-unreleased": BOOL,
                           "context": STR, "detailed-exitcode": BOOL, "suppress-secrets": BOOL,
                           "normalize-manifests": BOOL, "show-secrets": BOOL, "no-color": BOOL},
                          {**DEPLOY_SHORT, "C": "context"}, 2, 2),
}
ALIASES = {
    "ls": "list", "delete": "uninstall", "del": "uninstall", "un": "uninstall", "hist": "history",
    "inspect": "show", "show-values": "values", "rm": "remove", "up": "update", "dep": "dependency",
    "dependencies": "dependency",
}
SUBCOMMAND_GROUPS = {"get", "show", "repo", "plugin", "dependency", "diff"}
KNOWN_UNIMPLEMENTED = {
    "template", "pull", "fetch", "push", "lint", "package", "test", "registry", "search", "create",
    "env", "completion", "verify", "plugin", "repo", "get", "show", "dependency", "help",
}

_BOOL_NAMES = {n for spec in [GLOBAL_FLAGS] + [c[0] for c in COMMANDS.values()] for n, k in spec.items() if k in (BOOL, OPT)}
_BOOL_SHORT = {"h", "i", "a", "A", "q", "r", "d", "g", "c"}


def parse_bool(text, flag):
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise HelmError(f'invalid argument "{text}" for "--{flag}" flag: strconv.ParseBool: parsing "{text}": invalid syntax')


def tokenize(argv):
    """Split argv into positionals and (name, is_short, value) flags, pflag style (interspersed)."""
    positionals, flags = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positionals.extend(argv[i:])
            break
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            if eq:
                flags.append((name, False, value))
            elif name in _BOOL_NAMES or i >= len(argv):
                flags.append((name, False, None))
            else:
                flags.append((name, False, argv[i]))
                i += 1
        elif arg.startswith("-") and len(arg) > 1:
            body = arg[1:]
            while body:
                ch, body = body[0], body[1:]
                if body.startswith("="):
                    flags.append((ch, True, body[1:]))
                    break
                if ch in _BOOL_SHORT:
                    flags.append((ch, True, None))
                    continue
                if body:
                    flags.append((ch, True, body))
                elif i < len(argv):
                    flags.append((ch, True, argv[i]))
                    i += 1
                else:
                    flags.append((ch, True, None))
                break
        else:
            positionals.append(arg)
    return positionals, flags


def resolve(positionals):
    """Find the command path in the leading positionals."""
    if not positionals:
        raise HelmError("helm test double: no command given (try `helm double-info`)")
    first = ALIASES.get(positionals[0], positionals[0])
    if first == "diff" and not diff_plugin_enabled():
        raise HelmError(f'unknown command "diff" for "helm" (helm test double: the diff plugin is only '
                        f'emulated when {DIFF_PLUGIN_ENV}=1)')
    if first in SUBCOMMAND_GROUPS:
        if len(positionals) < 2:
            raise HelmError(f"helm test double: 'helm {first}' needs a subcommand")
        second = ALIASES.get(positionals[1], positionals[1])
        if second == "values" and positionals[1] == "show-values":
            second = "values"
        path = (first, second)
        rest = positionals[2:]
    else:
        path = (first,)
        rest = positionals[1:]
    if path not in COMMANDS:
        shown = " ".join(positionals[: len(path)])
        if first in KNOWN_UNIMPLEMENTED:
            raise HelmError(f"helm test double: 'helm {shown}' is not implemented (the double never fetches "
                            "or renders charts and never talks to a cluster)")
        raise HelmError(f'unknown command "{shown}" for "helm" (helm test double)')
    return path, rest


def parse_args(argv):
    positionals, raw_flags = tokenize(argv)
    path, args = resolve(positionals)
    spec, short, min_args, max_args = COMMANDS[path]
    allowed = {**GLOBAL_FLAGS, **spec}
    shorts = {**GLOBAL_SHORT, **short}
    opts = {}
    for name, is_short, value in raw_flags:
        if is_short:
            if name not in shorts:
                raise HelmError(f"unknown shorthand flag: '{name}' in -{name} (helm test double, command "
                                f"'helm {' '.join(path)}')")
            name = shorts[name]
        if name not in allowed:
            raise HelmError(f"unknown flag: --{name} (helm test double, command 'helm {' '.join(path)}')")
        kind = allowed[name]
        if kind == BOOL:
            opts[name] = True if value is None else parse_bool(value, name)
        elif kind == OPT:
            opts[name] = "client" if value is None else value
        elif value is None:
            raise HelmError(f"flag needs an argument: --{name}")
        elif kind == LIST:
            opts.setdefault(name, []).append(value)
        else:
            opts[name] = value
    if opts.get("help"):
        raise HelmError(f"helm test double: --help is not implemented (command 'helm {' '.join(path)}')")
    if len(args) < min_args or (max_args is not None and len(args) > max_args):
        want = f"{min_args}" if min_args == max_args else f"{min_args}..{max_args if max_args is not None else 'n'}"
        raise HelmError(f"\"helm {' '.join(path)}\" requires {want} argument(s), received {len(args)}: {args}")
    return path, args, opts


def diff_plugin_enabled():
    return os.environ.get(DIFF_PLUGIN_ENV, "").lower() in ("1", "true", "yes")


# --------------------------------------------------------------------------- values


class _StrDateLoader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings (helm's YAML->JSON does)."""


_StrDateLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _stringify_keys(obj):
    if isinstance(obj, dict):
        return {(k if isinstance(k, str) else json.dumps(k) if isinstance(k, bool) or k is None else str(k)):
                _stringify_keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_stringify_keys(v) for v in obj]
    return obj


def load_values_file(path):
    if re.match(r"^[a-z]+://", path):
        raise HelmError(f"helm test double: cannot fetch values file {path} (remote values files are not supported)")
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.load(fh, Loader=_StrDateLoader)  # noqa: S506 - SafeLoader subclass
    except FileNotFoundError:
        raise HelmError(f"open {path}: no such file or directory") from None
    except yaml.YAMLError as exc:
        raise HelmError(f"failed to parse {path}: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise HelmError(f"failed to parse {path}: error unmarshaling JSON: json: cannot unmarshal "
                        f"{type(doc).__name__} into Go value of type map[string]interface {{}}")
    return _stringify_keys(doc)


def merge_maps(a, b):
    """helm's mergeMaps: b over a, recursing where both sides are maps."""
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_maps(out[k], v)
        else:
            out[k] = v
    return out


def coalesce_tables(dst, src):
    """chartutil.CoalesceTables(dst, src): dst wins, src fills gaps, null in dst deletes."""
    out = dict(dst)
    for k, sv in src.items():
        if k not in out:
            out[k] = sv
        elif out[k] is None:
            del out[k]
        elif isinstance(out[k], dict) and isinstance(sv, dict):
            out[k] = coalesce_tables(out[k], sv)
    return out


class StrvalsParser:
    """Port of helm's pkg/strvals parser (--set, --set-string, --set-file, --set-json, --set-literal)."""

    def __init__(self, text, mode):
        self.s = text
        self.i = 0
        self.mode = mode  # typed | string | file | json | literal

    # -- low level
    def _eof(self):
        return self.i >= len(self.s)

    def runes_until(self, stop):
        out = []
        while self.i < len(self.s):
            ch = self.s[self.i]
            self.i += 1
            if ch in stop:
                return "".join(out), ch
            if ch == "\\":
                if self.i >= len(self.s):
                    return "".join(out), None
                out.append(self.s[self.i])
                self.i += 1
                continue
            out.append(ch)
        return "".join(out), None  # None == EOF

    def reader(self, text):
        if self.mode == "typed":
            return typed_val(text)
        if self.mode == "file":
            try:
                with open(os.path.abspath(text), encoding="utf-8") as fh:
                    return fh.read()
            except OSError as exc:
                raise HelmError(f"open {text}: {exc.strerror.lower()}") from None
        return text

    # -- grammar
    def parse(self, data):
        while True:
            if self.key(data) == "EOF":
                return data

    def _json_value(self):
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1
        if self.i >= len(self.s):
            return None, True
        if self.s[self.i] == ",":
            self.i += 1
            return None, True
        try:
            value, end = json.JSONDecoder().raw_decode(self.s, self.i)
        except json.JSONDecodeError as exc:
            raise HelmError(f"failed parsing --set-json data {self.s!r}: {exc}") from None
        self.i = end
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1
        if self.i < len(self.s):
            if self.s[self.i] != ",":
                raise HelmError(f"failed parsing --set-json data {self.s!r}: unexpected data after JSON value")
            self.i += 1
        return value, False

    def _value_after_equals(self):
        """Returns (value, eof)."""
        if self.mode == "json":
            value, _end = self._json_value()
            return value, False
        if self.mode == "literal":
            value = self.s[self.i:]
            self.i = len(self.s)
            return value, False
        if not self._eof() and self.s[self.i] == "{":
            self.i += 1
            items = []
            while True:
                text, last = self.runes_until({",", "}"})
                if last is None:
                    raise HelmError("list must terminate with '}'")
                items.append(self.reader(text))
                if last == "}":
                    if not self._eof() and self.s[self.i] == ",":
                        self.i += 1
                    return items, False
        if self._eof():
            return "", True
        text, _stop = self.runes_until({","})
        return self.reader(text), False

    def key(self, data):
        while True:
            k, last = self.runes_until({"=", "[", ",", "."})
            if last is None:
                if not k:
                    return "EOF"
                raise HelmError(f'key "{k}" has no value')
            if last == "[":
                idx = self.key_index()
                lst = data.get(k) if isinstance(data.get(k), list) else []
                lst = self.list_item(list(lst), idx)
                _set(data, k, lst)
                return None
            if last == "=":
                value, eof = self._value_after_equals()
                _set(data, k, value)
                return "EOF" if eof else None
            if last == ",":
                raise HelmError(f'key "{k}" has no value (cannot end with ,)')
            # last == "."
            inner = data.get(k) if isinstance(data.get(k), dict) else {}
            inner = dict(inner)
            res = self.key(inner)
            if res is None and not inner:
                raise HelmError(f'key map "{k}" has no value')
            if inner:
                _set(data, k, inner)
            return res

    def key_index(self):
        text, last = self.runes_until({"]"})
        if last is None:
            raise HelmError("error parsing index: unexpected end of input")
        try:
            return int(text)
        except ValueError:
            raise HelmError(f'error parsing index: strconv.Atoi: parsing "{text}": invalid syntax') from None

    def list_item(self, lst, idx):
        if idx < 0:
            raise HelmError(f"negative {idx} index not allowed")
        k, last = self.runes_until({"[", ".", "="})
        if k:
            raise HelmError(f'unexpected data at end of array index: "{k}"')
        if last is None:
            raise HelmError("unexpected end of input after array index")
        if last == "=":
            value, _end = self._value_after_equals()
            return _set_index(lst, idx, value)
        if last == "[":
            nxt = self.key_index()
            cur = lst[idx] if idx < len(lst) and isinstance(lst[idx], list) else []
            return _set_index(lst, idx, self.list_item(list(cur), nxt))
        inner = lst[idx] if idx < len(lst) and isinstance(lst[idx], dict) else {}
        inner = dict(inner)
        self.key(inner)
        return _set_index(lst, idx, inner)


def typed_val(text):
    low = text.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    if low == "null":
        return None
    if text == "0":
        return 0
    if text and text[0] != "0" and re.fullmatch(r"[+-]?[0-9]+", text):
        value = int(text)
        if -(2**63) <= value < 2**63:
            return value
    return text


def _set(data, key, value):
    if key:
        data[key] = value


def _set_index(lst, idx, value):
    if len(lst) <= idx:
        lst.extend([None] * (idx + 1 - len(lst)))
    lst[idx] = value
    return lst


def parse_set(text, mode="typed", base=None):
    """Apply one --set style argument to ``base`` (a dict) and return it."""
    return StrvalsParser(text, mode).parse(base if base is not None else {})


def user_values(opts):
    """helm's values.Options.MergeValues: -f files, then --set-json, --set, --set-string, --set-file, --set-literal."""
    base = {}
    for path in opts.get("values", []):
        base = merge_maps(base, load_values_file(path))
    for mode, flag in (("json", "set-json"), ("typed", "set"), ("string", "set-string"),
                       ("file", "set-file"), ("literal", "set-literal")):
        for text in opts.get(flag, []):
            base = parse_set(text, mode, base)
    return base


# --------------------------------------------------------------------------- charts


def chart_info(ref, opts, repos):
    """What the double knows about a chart reference: name, version, appVersion, ref, repo_url."""
    version = opts.get("version")
    repo_url = opts.get("repo")
    meta = {"apiVersion": "v2", "ref": ref, "repo_url": repo_url}
    if repo_url:
        meta.update(name=ref, version=version or "0.0.0-double")
        return meta
    if ref.startswith("oci://"):
        last = ref.rstrip("/").rsplit("/", 1)[-1]
        name, _colon, tag = last.partition(":")
        meta.update(name=name, version=version or tag or "0.0.0-double")
        return meta
    if re.match(r"^https?://", ref):
        base = ref.rsplit("/", 1)[-1]
        m = re.match(r"^(.+?)-(v?\d.*)\.tgz$", base)
        meta.update(name=m.group(1) if m else base.removesuffix(".tgz"),
                    version=version or (m.group(2) if m else "0.0.0-double"))
        return meta
    if os.path.exists(ref):
        chart = _read_local_chart(ref)
        meta.update({k: v for k, v in chart.items() if k != "ref"})
        meta["name"] = str(chart.get("name", os.path.basename(os.path.abspath(ref))))
        meta["version"] = str(chart.get("version", ""))
        if chart.get("appVersion") is not None:
            meta["appVersion"] = str(chart["appVersion"])
        meta["ref"] = ref
        meta["local_path"] = os.path.abspath(ref)
        return meta
    if "/" in ref and not ref.startswith((".", "/")):
        repo, _slash, name = ref.partition("/")
        if repo not in {r["name"] for r in repos}:
            raise HelmError(f"repo {repo} not found")
        meta.update(name=name, version=version or "0.0.0-double",
                    repo_url=next(r["url"] for r in repos if r["name"] == repo), repo=repo)
        return meta
    if ref.startswith((".", "/")):
        raise HelmError(f'path "{ref}" not found')
    raise HelmError(f"non-absolute URLs should be in form of repo_name/path_to_chart, got: {ref}")


def _read_local_chart(path):
    import tarfile  # noqa: PLC0415 - only local charts need it (start-up cost)

    try:
        if os.path.isdir(path):
            with open(os.path.join(path, "Chart.yaml"), encoding="utf-8") as fh:
                doc = yaml.safe_load(fh)
        else:
            with tarfile.open(path) as tar:
                member = next((m for m in tar.getmembers()
                               if m.name.count("/") == 1 and m.name.endswith("/Chart.yaml")), None)
                if member is None:
                    raise HelmError(f"Chart.yaml file is missing in {path}")
                doc = yaml.safe_load(tar.extractfile(member))
    except FileNotFoundError:
        raise HelmError(f"Chart.yaml file is missing in {path}") from None
    except (tarfile.TarError, yaml.YAMLError) as exc:
        raise HelmError(f"cannot read chart {path}: {exc}") from None
    if not isinstance(doc, dict) or not doc.get("name"):
        raise HelmError(f"validation: chart.metadata.name is required ({path})")
    return doc


def chart_yaml(meta):
    """Chart.yaml as `helm show chart` prints it (metadata only)."""
    out = {k: v for k, v in meta.items() if k not in ("ref", "repo_url", "repo", "local_path")}
    if "local_path" not in meta:
        out["description"] = "helm test double: chart metadata made up from the reference, nothing fetched"
    return out


# --------------------------------------------------------------------------- cluster / store


class Context:
    def __init__(self, opts):
        self.opts = opts
        self.state = os.environ[store.STATE_ENV]
        self._cluster = None
        self.lock = None  # the state lock's file, released during a modelled --wait

    # kube settings: flag > env > kubeconfig
    def _setting(self, flag, env):
        return self.opts.get(flag) or os.environ.get(env) or None

    def cluster(self):
        if self._cluster:
            return self._cluster
        server = self._setting("kube-apiserver", "HELM_KUBEAPISERVER")
        kcfg = self.opts.get("kubeconfig") or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        context = self._setting("kube-context", "HELM_KUBECONTEXT")
        cfg = store.load_kubeconfig(kcfg)
        ctx_name = context or cfg["current-context"]
        ctx = cfg["contexts"].get(ctx_name) if ctx_name else None
        if context and ctx is None:
            raise HelmError(f'Kubernetes cluster unreachable: context "{context}" does not exist')
        if not server and ctx is not None:
            server = (cfg["clusters"].get(ctx.get("cluster")) or {}).get("server")
        if not server:
            raise HelmError("Kubernetes cluster unreachable: no API server selected (helm test double: give a "
                            "kubeconfig with a current-context, --kube-context, or --kube-apiserver; the double "
                            "only uses the server URL as the key of its release store)")
        namespace = (self._setting("namespace", "HELM_NAMESPACE")
                     or (ctx or {}).get("namespace") or "default")
        self._cluster = (server, store.cluster_key(server), namespace)
        return self._cluster

    @property
    def namespace(self):
        return self.cluster()[2]

    def release_dir(self, name, namespace=None):
        """store.release_dir's layout, as a str (no pathlib import: start-up cost)."""
        _server, key, ns = self.cluster()
        return os.path.join(self.state, key, namespace or ns, name)

    def load(self, name, namespace=None):
        path = self.release_dir(name, namespace)
        try:
            with open(os.path.join(path, store.RELEASE_FILE), encoding="utf-8") as fh:
                return json.load(fh)
        except FileNotFoundError:
            return None

    def save(self, doc):
        path = self.release_dir(doc["name"], doc["namespace"])
        os.makedirs(path, exist_ok=True)
        _atomic_write(os.path.join(path, store.RELEASE_FILE), json.dumps(doc, indent=2, sort_keys=True) + "\n")
        _atomic_write(os.path.join(path, store.VALUES_FILE), _yaml(doc["revisions"][-1]["values"]))

    def delete(self, name):
        import shutil  # noqa: PLC0415 - only uninstall needs it (start-up cost)

        path = self.release_dir(name)
        shutil.rmtree(path, ignore_errors=True)
        ns_dir = os.path.dirname(path)
        for parent in (ns_dir, os.path.dirname(ns_dir)):  # namespace, cluster dirs when empty
            try:
                os.rmdir(parent)
            except OSError:
                break

    def all_releases(self, all_namespaces):
        _server, key, ns = self.cluster()
        root = os.path.join(self.state, key)
        out = []
        if not os.path.isdir(root):
            return out
        for nsname in sorted(os.listdir(root)):
            if not all_namespaces and nsname != ns:
                continue
            for rel in sorted(os.listdir(os.path.join(root, nsname))):
                doc = self.load(rel, nsname)
                if doc:
                    out.append(doc)
        return out

    def repos(self):
        return store.repositories(self.state)

    def save_repos(self, repos):
        _atomic_write(os.path.join(self.state, store.REPOSITORIES_FILE), json.dumps(repos, indent=2) + "\n")


def _atomic_write(path, text):
    path = str(path)
    # Every call holds the state lock, so a per-process temporary name cannot collide (no tempfile import).
    tmp = os.path.join(os.path.dirname(path), f".tmp-{os.getpid()}-{os.path.basename(path)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _yaml(data):
    return yaml.safe_dump(data, default_flow_style=False, sort_keys=True, allow_unicode=True)


def _now():
    return _dt.datetime.now(_dt.timezone.utc)


def _helm_time(iso):
    t = _dt.datetime.fromisoformat(iso)
    return t.strftime("%Y-%m-%d %H:%M:%S.%f000 +0000 UTC")


def _get_revision(doc, name, opts):
    if opts.get("revision"):
        want = int(opts["revision"])
        for rev in doc["revisions"]:
            if rev["revision"] == want:
                return rev
        raise HelmError(f"release: not found (helm test double: {name} has no revision {want})")
    return doc["revisions"][-1]


def _require(ctx, name):
    doc = ctx.load(name)
    if doc is None:
        raise HelmError("release: not found")
    return doc


# --------------------------------------------------------------------------- commands


def cmd_version(ctx, args, opts):
    if opts.get("template"):
        raise HelmError("helm test double: `helm version --template` is not implemented")
    if opts.get("short"):
        return f"{PRETEND_VERSION}+gdouble\n"
    return (f'version.BuildInfo{{Version:"{PRETEND_VERSION}", GitCommit:"helm-test-double", '
            'GitTreeState:"clean", GoVersion:"go1.23.7"}\n')


def cmd_double_info(ctx, args, opts):
    return (f"helm test double (tests/doubles/helm_double/helm) -- NOT helm.\n"
            f"Pretends to be helm {PRETEND_VERSION}; records releases under ${store.STATE_ENV}"
            f" ({os.environ.get(store.STATE_ENV, 'unset')}).\n"
            f"diff plugin emulation: {'on' if diff_plugin_enabled() else 'off'} (${DIFF_PLUGIN_ENV}).\n"
            f"{DOUBLE_NOTE}.\n")


def _list_row(doc):
    cur = doc["revisions"][-1]
    return {
        "name": doc["name"],
        "namespace": doc["namespace"],
        "revision": str(cur["revision"]),
        "updated": _helm_time(cur["updated"]),
        "status": cur["status"],
        "chart": f'{cur["chart"]["name"]}-{cur["chart"]["version"]}',
        "app_version": cur["chart"].get("appVersion") or "",
    }


def _table(headers, rows):
    widths = [max(len(h), *(len(str(r[i])) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["\t".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for r in rows:
        lines.append("\t".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines) + "\n"


def _output(data, fmt, table):
    fmt = (fmt or "table").lower()
    if fmt == "json":
        return json.dumps(data) + "\n"
    if fmt == "yaml":
        return _yaml(data)
    if fmt == "table":
        return table()
    raise HelmError(f'invalid format type "{fmt}"')


def cmd_list(ctx, args, opts):
    states = {s for s in ("deployed", "failed", "pending", "superseded", "uninstalled", "uninstalling") if opts.get(s)}
    if not states:
        states = {"deployed", "failed"}
    rows = []
    pattern = re.compile(opts["filter"]) if opts.get("filter") else None
    for doc in ctx.all_releases(opts.get("all-namespaces")):
        status = doc["revisions"][-1]["status"]
        wanted = opts.get("all") or status in states or ("pending" in states and status.startswith("pending"))
        if wanted and (pattern is None or pattern.search(doc["name"])):
            rows.append(_list_row(doc))
    if opts.get("reverse"):
        rows.reverse()
    if opts.get("short"):
        return "".join(r["name"] + "\n" for r in rows)
    headers = ["NAME", "NAMESPACE", "REVISION", "UPDATED", "STATUS", "CHART", "APP VERSION"]
    keys = ["name", "namespace", "revision", "updated", "status", "chart", "app_version"]
    return _output(rows, opts.get("output"), lambda: _table(headers, [[r[k] for k in keys] for r in rows]))


def _compute_values(current, opts, reset, reuse, reset_then_reuse):
    new = user_values(opts)
    if current is None or reset:
        return new
    old = current["values"]
    if reuse or reset_then_reuse:
        return coalesce_tables(new, old)
    if not new and old:
        return old
    return new


def _deploy(ctx, name, ref, opts, mode):
    """install / upgrade: record a new revision. mode: install|upgrade|diff."""
    chart = chart_info(ref, opts, ctx.repos())
    doc = ctx.load(name)
    current = doc["revisions"][-1] if doc else None
    live = current is not None and not current["status"].startswith("uninstall")
    if mode == "install" and live and not opts.get("replace"):
        raise HelmError("INSTALLATION FAILED: cannot re-use a name that is still in use")
    if mode == "upgrade" and not live and not opts.get("install"):
        raise HelmError(f'UPGRADE FAILED: "{name}" has no deployed releases')
    reset = mode == "install" or not live or opts.get("reset-values", False)
    values = _compute_values(current if live else None, opts, reset, opts.get("reuse-values", False),
                             opts.get("reset-then-reuse-values", False))
    now = _now().isoformat()
    revision = {
        "revision": (current["revision"] + 1) if current else 1,
        "status": "deployed",
        "chart": {k: v for k, v in chart.items() if k != "dependencies"},
        "values": values,
        "updated": now,
        "first_deployed": (doc["revisions"][0]["first_deployed"] if doc and live else now),
        "description": opts.get("description") or ("Upgrade complete" if live else "Install complete"),
        "flags": {k: v for k, v in opts.items() if k not in ("password", "kube-token", "set", "set-string",
                                                             "set-json", "set-file", "set-literal")},
        "value_sources": {k: opts[k] for k in ("values", "set", "set-string", "set-json", "set-file",
                                               "set-literal") if k in opts},
    }
    return doc, current, live, revision


def _release_status_text(doc, rev, verb):
    return (f'{verb}\nNAME: {doc["name"]}\nLAST DEPLOYED: {_dt.datetime.fromisoformat(rev["updated"]).strftime("%a %b %d %H:%M:%S %Y")}\n'
            f'NAMESPACE: {doc["namespace"]}\nSTATUS: {rev["status"]}\nREVISION: {rev["revision"]}\n'
            f"TEST SUITE: None\nNOTES:\n{DOUBLE_NOTE}.\n")


def _status_doc(doc, rev):
    return {
        "name": doc["name"],
        "info": {
            "first_deployed": rev.get("first_deployed", rev["updated"]),
            "last_deployed": rev["updated"],
            "deleted": rev.get("deleted", ""),
            "description": rev.get("description", ""),
            "status": rev["status"],
            "notes": DOUBLE_NOTE,
        },
        "chart": {"metadata": {k: v for k, v in rev["chart"].items()
                               if k in ("apiVersion", "name", "version", "appVersion")}},
        "config": rev["values"],
        "manifest": "",
        "version": rev["revision"],
        "namespace": doc["namespace"],
    }


def cmd_install_or_upgrade(ctx, args, opts, mode):
    if mode == "install":
        if opts.get("generate-name") or len(args) < 2:
            raise HelmError("helm test double: `helm install --generate-name` / one-argument install is not "
                            "implemented; give NAME CHART")
    name, ref = args
    server, key, namespace = ctx.cluster()
    doc, current, live, rev = _deploy(ctx, name, ref, opts, mode)
    if opts.get("dry-run"):
        if opts["dry-run"] not in ("client", "server", "none", "true", "false"):
            raise HelmError(f'invalid dry-run value "{opts["dry-run"]}"')
        if opts["dry-run"] not in ("none", "false"):
            shown = doc or {"name": name, "namespace": namespace}
            return _release_status_text(shown, rev | {"status": "pending-" + ("upgrade" if live else "install")},
                                        "(dry run, helm test double: nothing recorded)")
    if doc is None:
        doc = {"name": name, "namespace": namespace, "cluster_key": key, "cluster_server": server,
               "double": "recorded by the helm test double", "revisions": []}
    for old in doc["revisions"]:
        if old["status"] == "deployed":
            old["status"] = "superseded"
    doc["revisions"].append(rev)
    history_max = int(opts.get("history-max", DEFAULT_HISTORY_MAX))
    if history_max > 0:
        doc["revisions"] = doc["revisions"][-history_max:]
    wait = _modelled_wait(opts)
    if wait > 0:
        rev["status"] = "pending-upgrade" if live else "pending-install"
        ctx.save(doc)
        doc = _wait_unlocked(ctx, name, rev["revision"], wait)
    ctx.save(doc)
    if opts.get("output") and opts["output"] != "table":
        return _output(_status_doc(doc, rev), opts["output"], None)
    verb = f'Release "{name}" has been upgraded. Happy Helming!' if live else (
        f'Release "{name}" does not exist. Installing it now.' if mode == "upgrade" else "")
    return _release_status_text(doc, rev, verb).lstrip("\n")


def _go_duration(text):
    """Seconds of a Go duration such as 5m0s, 300s or 1h (helm's --timeout); None if unreadable."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", text or "")
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[u] for n, u in parts)


def _modelled_wait(opts):
    """Seconds this install/upgrade waits under $HELM_DOUBLE_WAIT_SECONDS (0 without --wait)."""
    if not opts.get("wait"):
        return 0.0
    try:
        wait = float(os.environ.get(WAIT_SECONDS_ENV) or 0)
    except ValueError as exc:
        raise HelmError(f"{WAIT_SECONDS_ENV} must be a number of seconds, got {os.environ.get(WAIT_SECONDS_ENV)!r}") from exc
    timeout = _go_duration(opts.get("timeout") or "5m0s")
    return max(min(wait, timeout if timeout is not None else wait), 0.0)


def _wait_unlocked(ctx, name, revision, seconds):
    """The wait model: sleep without the state lock (other clusters' calls go on), then mark the revision deployed."""
    if ctx.lock is not None:
        fcntl.flock(ctx.lock, fcntl.LOCK_UN)
    try:
        time.sleep(seconds)
    finally:
        if ctx.lock is not None:
            fcntl.flock(ctx.lock, fcntl.LOCK_EX)
    doc = ctx.load(name)
    if doc is None:
        raise HelmError(f'release "{name}" was removed while its --wait was pending')
    for rev in doc["revisions"]:
        if rev["revision"] == revision and rev["status"].startswith("pending-"):
            rev["status"] = "deployed"
    return doc


def cmd_upgrade(ctx, args, opts):
    return cmd_install_or_upgrade(ctx, args, opts, "upgrade")


def cmd_install(ctx, args, opts):
    return cmd_install_or_upgrade(ctx, args, opts, "install")


def cmd_diff_upgrade(ctx, args, opts):
    """Emulated helm-diff: compares chart name/version/appVersion and user values, not manifests."""
    name, ref = args
    _doc, current, live, rev = _deploy(ctx, name, ref, opts, "diff")

    def view(r):
        if r is None:
            return ""
        c = r["chart"]
        return _yaml({"chart": f'{c["name"]}-{c["version"]}', "appVersion": c.get("appVersion") or "",
                      "values": r["values"]})

    before = view(current if live else None)
    after = view(rev)
    if before == after:
        return ""
    import difflib  # noqa: PLC0415 - only the diff plugin emulation needs it (start-up cost)

    lines = difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                 f"{ctx.namespace}, {name} (current, helm test double)",
                                 f"{ctx.namespace}, {name} (upgrade, helm test double)")
    return "".join(lines)


def cmd_uninstall(ctx, args, opts):
    out = []
    for name in args:
        doc = ctx.load(name)
        if doc is None or doc["revisions"][-1]["status"] == "uninstalled":
            if opts.get("ignore-not-found"):
                continue
            raise HelmError(f"uninstall: Release not loaded: {name}: release: not found")
        if opts.get("dry-run"):
            out.append(f'release "{name}" uninstalled (dry run, helm test double: nothing recorded)\n')
            continue
        if opts.get("keep-history"):
            cur = doc["revisions"][-1]
            cur["status"] = "uninstalled"
            cur["deleted"] = _now().isoformat()
            cur["description"] = opts.get("description") or "Uninstallation complete"
            ctx.save(doc)
        else:
            ctx.delete(name)
        out.append(f'release "{name}" uninstalled\n')
    return "".join(out)


def cmd_rollback(ctx, args, opts):
    name = args[0]
    doc = _require(ctx, name)
    cur = doc["revisions"][-1]
    target_no = int(args[1]) if len(args) > 1 and args[1] != "0" else cur["revision"] - 1
    target = next((r for r in doc["revisions"] if r["revision"] == target_no), None)
    if target is None:
        raise HelmError(f"release has no {target_no} version")
    if opts.get("dry-run"):
        return "Rollback was a success! Happy Helming! (dry run, helm test double: nothing recorded)\n"
    for old in doc["revisions"]:
        if old["status"] == "deployed":
            old["status"] = "superseded"
    now = _now().isoformat()
    doc["revisions"].append(dict(target, revision=cur["revision"] + 1, status="deployed", updated=now,
                                 description=f"Rollback to {target_no}"))
    ctx.save(doc)
    return "Rollback was a success! Happy Helming!\n"


def cmd_status(ctx, args, opts):
    doc = _require(ctx, args[0])
    rev = _get_revision(doc, args[0], opts)
    st = _status_doc(doc, rev)
    return _output(st, opts.get("output"), lambda: _release_status_text(doc, rev, "").lstrip("\n"))


def cmd_history(ctx, args, opts):
    doc = _require(ctx, args[0])
    rows = [{"revision": r["revision"], "updated": _helm_time(r["updated"]), "status": r["status"],
             "chart": f'{r["chart"]["name"]}-{r["chart"]["version"]}',
             "app_version": r["chart"].get("appVersion") or "", "description": r.get("description", "")}
            for r in doc["revisions"]]
    if opts.get("max"):
        rows = rows[-int(opts["max"]):]
    headers = ["REVISION", "UPDATED", "STATUS", "CHART", "APP VERSION", "DESCRIPTION"]
    keys = ["revision", "updated", "status", "chart", "app_version", "description"]
    return _output(rows, opts.get("output"), lambda: _table(headers, [[r[k] for k in keys] for r in rows]))


def cmd_get_values(ctx, args, opts):
    doc = _require(ctx, args[0])
    values = _get_revision(doc, args[0], opts)["values"]
    fmt = (opts.get("output") or "table").lower()
    if fmt == "table":
        title = "COMPUTED VALUES:" if opts.get("all") else "USER-SUPPLIED VALUES:"
        return title + "\n" + (_yaml(values) if values else "null\n")
    if not values:
        return "null\n" if fmt == "yaml" else "null\n"
    return _output(values, fmt, None)


def cmd_get_manifest(ctx, args, opts):
    _get_revision(_require(ctx, args[0]), args[0], opts)
    return ""  # nothing rendered


def cmd_get_notes(ctx, args, opts):
    _get_revision(_require(ctx, args[0]), args[0], opts)
    return ""


def cmd_get_hooks(ctx, args, opts):
    _get_revision(_require(ctx, args[0]), args[0], opts)
    return ""


def cmd_get_metadata(ctx, args, opts):
    doc = _require(ctx, args[0])
    rev = _get_revision(doc, args[0], opts)
    meta = {"name": doc["name"], "chart": rev["chart"]["name"], "version": rev["chart"]["version"],
            "appVersion": rev["chart"].get("appVersion") or "", "namespace": doc["namespace"],
            "revision": rev["revision"], "status": rev["status"], "deployedAt": rev["updated"]}
    return _output(meta, opts.get("output"), lambda: "".join(f"{k.upper()}: {v}\n" for k, v in meta.items()))


def cmd_show_chart(ctx, args, opts):
    return _yaml(chart_yaml(chart_info(args[0], opts, ctx.repos())))


def cmd_show_values(ctx, args, opts):
    meta = chart_info(args[0], opts, ctx.repos())
    if opts.get("jsonpath"):
        raise HelmError("helm test double: `helm show values --jsonpath` is not implemented")
    path = meta.get("local_path")
    if path and os.path.isdir(path) and os.path.isfile(os.path.join(path, "values.yaml")):
        with open(os.path.join(path, "values.yaml"), encoding="utf-8") as fh:
            return fh.read()
    return "# helm test double: chart values are not known (nothing fetched)\n"


def cmd_show_readme(ctx, args, opts):
    chart_info(args[0], opts, ctx.repos())
    return ""


def cmd_show_crds(ctx, args, opts):
    chart_info(args[0], opts, ctx.repos())
    return ""


def cmd_repo_add(ctx, args, opts):
    name, url = args
    repos = ctx.repos()
    entry = {"name": name, "url": url}
    for key in ("username", "insecure-skip-tls-verify", "pass-credentials", "ca-file", "cert-file", "key-file"):
        if opts.get(key):
            entry[key.replace("-", "_")] = opts[key]
    if opts.get("password") or opts.get("password-stdin"):
        entry["password_set"] = True
    existing = next((r for r in repos if r["name"] == name), None)
    if existing is not None and not opts.get("force-update"):
        if existing == entry:
            return f'"{name}" already exists with the same configuration, skipping\n'
        raise HelmError(f"repository name ({name}) already exists, please specify a different name")
    repos = [r for r in repos if r["name"] != name] + [entry]
    ctx.save_repos(repos)
    return f'"{name}" has been added to your repositories\n'


def cmd_repo_list(ctx, args, opts):
    repos = ctx.repos()
    if not repos:
        raise HelmError("no repositories to show")
    rows = [{"name": r["name"], "url": r["url"]} for r in repos]
    return _output(rows, opts.get("output"), lambda: _table(["NAME", "URL"], [[r["name"], r["url"]] for r in rows]))


def cmd_repo_update(ctx, args, opts):
    repos = ctx.repos()
    if not repos:
        raise HelmError("no repositories found. You must add one before updating")
    names = {r["name"] for r in repos}
    missing = [a for a in args if a not in names]
    if missing:
        raise HelmError(f"no repositories found matching '{missing}'.  Nothing will be updated")
    chosen = [r for r in repos if not args or r["name"] in args]
    lines = ["Hang tight while we grab the latest from your chart repositories..."]
    lines += [f'...Successfully got an update from the "{r["name"]}" chart repository '
              "(helm test double: nothing fetched)" for r in chosen]
    lines.append("Update Complete. \u2388Happy Helming!\u2388")
    return "\n".join(lines) + "\n"


def cmd_repo_remove(ctx, args, opts):
    repos = ctx.repos()
    out = []
    for name in args:
        if name not in {r["name"] for r in repos}:
            raise HelmError(f'no repo named "{name}" found')
        repos = [r for r in repos if r["name"] != name]
        out.append(f'"{name}" has been removed from your repositories\n')
    ctx.save_repos(repos)
    return "".join(out)


def cmd_plugin_list(ctx, args, opts):
    out = "NAME\tVERSION\tDESCRIPTION\n"
    if diff_plugin_enabled():
        out += f"diff\t{DIFF_PLUGIN_VERSION}\thelm test double: compares chart and values only, not manifests\n"
    return out


def _dep_chart(args):
    path = args[0] if args else "."
    chart = _read_local_chart(path) if os.path.isdir(path) else None
    if chart is None:
        raise HelmError(f'helm test double: "{path}" is not a local chart directory')
    return path, chart


def cmd_dependency_update(ctx, args, opts):
    path, chart = _dep_chart(args)
    deps = chart.get("dependencies") or []
    return (f"helm test double: {len(deps)} dependencies of {path} NOT downloaded (nothing is rendered, "
            "so they are not needed)\n")


cmd_dependency_build = cmd_dependency_update


def cmd_dependency_list(ctx, args, opts):
    path, chart = _dep_chart(args)
    rows = [[d.get("name", ""), d.get("version", ""), d.get("repository", ""), "unknown (helm test double)"]
            for d in chart.get("dependencies") or []]
    return _table(["NAME", "VERSION", "REPOSITORY", "STATUS"], rows)


HANDLERS = {
    ("version",): cmd_version, ("double-info",): cmd_double_info, ("list",): cmd_list,
    ("upgrade",): cmd_upgrade, ("install",): cmd_install, ("uninstall",): cmd_uninstall,
    ("rollback",): cmd_rollback, ("status",): cmd_status, ("history",): cmd_history,
    ("get", "values"): cmd_get_values, ("get", "manifest"): cmd_get_manifest,
    ("get", "notes"): cmd_get_notes, ("get", "hooks"): cmd_get_hooks, ("get", "metadata"): cmd_get_metadata,
    ("show", "chart"): cmd_show_chart, ("show", "values"): cmd_show_values,
    ("show", "readme"): cmd_show_readme, ("show", "crds"): cmd_show_crds,
    ("repo", "add"): cmd_repo_add, ("repo", "list"): cmd_repo_list, ("repo", "update"): cmd_repo_update,
    ("repo", "remove"): cmd_repo_remove, ("plugin", "list"): cmd_plugin_list,
    ("dependency", "update"): cmd_dependency_update, ("dependency", "build"): cmd_dependency_build,
    ("dependency", "list"): cmd_dependency_list, ("diff", "upgrade"): cmd_diff_upgrade,
}


# --------------------------------------------------------------------------- main

_SECRET_FLAGS = {"--password", "--kube-token"}


def _redacted(argv):
    out, hide = [], False
    for arg in argv:
        if hide:
            out.append("******")
            hide = False
            continue
        name, eq, _value = arg.partition("=")
        if name in _SECRET_FLAGS:
            if eq:
                out.append(name + "=******")
            else:
                out.append(arg)
                hide = True
            continue
        out.append(arg)
    return out


def _log(state, argv, rc, err):
    env = {k: v for k, v in os.environ.items()
           if (k.startswith("HELM_") or k in ("KUBECONFIG",)) and k != "HELM_KUBETOKEN"}
    entry = {"time": _now().isoformat(), "argv": _redacted(argv), "cwd": os.getcwd(), "rc": rc, "env": env}
    if err:
        entry["error"] = err
    with open(os.path.join(state, store.INVOCATIONS_FILE), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")


def main(argv):
    state = os.environ.get(store.STATE_ENV)
    if argv[:1] == ["double-info"] and not state:
        sys.stdout.write(cmd_double_info(None, [], {}))
        return 0
    if not state:
        sys.stderr.write(f"Error: this `helm` is a TEST DOUBLE (tests/doubles/helm_double/helm), not helm; "
                         f"set {store.STATE_ENV} to a directory where it records releases, or take it off PATH.\n")
        return 2
    os.makedirs(state, exist_ok=True)
    rc, out, err = 0, "", ""
    with open(os.path.join(state, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            path, args, opts = parse_args(argv)
            ctx = Context(opts)
            ctx.lock = lock
            out = HANDLERS[path](ctx, args, opts)
        except HelmError as exc:
            rc, err = 1, f"Error: {exc}\n"
        except Exception as exc:  # noqa: BLE001 - a bug in the double must be loud, and logged
            import traceback

            rc, err = 1, f"Error: helm test double internal error: {exc!r}\n{traceback.format_exc()}"
        _log(state, argv, rc, err.strip())
    sys.stdout.write(out)
    sys.stderr.write(err)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

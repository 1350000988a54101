# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Query the served iris model with the v2 (Open Inference) protocol.

Two transports, same answer:

* ``json``   - plain HTTP ``POST /v2/models/<model>/infer`` with a JSON body (stdlib only);
* ``binary`` - ``tritonclient.http`` with ``binary_data=True`` (the binary tensor extension).

Readiness is checked first (``GET /v2/health/ready`` and ``/v2/models/<model>/ready``).
Behind a KServe ingress give the InferenceService host name with ``--host``
(for example ``--host iris.models.example.com``); it is sent as the Host header.

Usage::

    python examples/iris/infer.py --url http://127.0.0.1:8080 [--host iris-predictor.models.example.com] \\
        [--protocol json|binary|both] [--row 5.1,3.5,1.4,0.2 ...] [--json]

Without ``--row`` three known rows (one per species) are sent. Prints one line per
row: the features, the predicted class and its probability.
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

CLASS_NAMES = ("setosa", "versicolor", "virginica")
INPUT_NAME = "input"
OUTPUT_NAMES = ("probabilities", "label")
SAMPLE_ROWS = (
    (5.1, 3.5, 1.4, 0.2),  # setosa
    (6.4, 3.2, 4.5, 1.5),  # versicolor
    (6.3, 3.3, 6.0, 2.5),  # virginica
)


class InferenceError(Exception):
    """The server is not ready or answered with an error."""


def _request(url, host=None, body=None, timeout=10.0):
    headers = {"Accept": "application/json"}
    if host:
        headers["Host"] = host
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the user's own server
            text = resp.read().decode("utf-8")
            return resp.status, (json.loads(text) if text.strip() else {})
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", errors="replace")
        return exc.code, {"error": detail}


def wait_ready(url, model, host=None, timeout=60.0):
    """Wait until the server and the model report ready (``/v2/health/ready``, ``/v2/models/<m>/ready``)."""
    deadline = time.monotonic() + timeout
    base = url.rstrip("/")
    last = None
    while True:
        try:
            server, _body = _request(f"{base}/v2/health/ready", host)
            model_status, _body = _request(f"{base}/v2/models/{model}/ready", host)
            if server == 200 and model_status == 200:
                return True
            last = f"server ready: HTTP {server}, model {model} ready: HTTP {model_status}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            raise InferenceError(f"{base} not ready within {timeout}s ({last})")
        time.sleep(0.5)


def _result(rows, probabilities, labels):
    return [{"features": list(row), "probabilities": [float(p) for p in probs], "class_index": int(label),
             "class": CLASS_NAMES[int(label)]} for row, probs, label in zip(rows, probabilities, labels)]


def infer_json(url, model, rows, host=None, timeout=10.0):
    """v2 REST with a JSON body; returns one dict per row."""
    body = {
        "id": "nga4m-iris-json",
        "inputs": [{"name": INPUT_NAME, "shape": [len(rows), 4], "datatype": "FP32", "data": [float(v) for row in rows for v in row]}],
        "outputs": [{"name": name} for name in OUTPUT_NAMES],
    }
    status, answer = _request(f"{url.rstrip('/')}/v2/models/{model}/infer", host, body, timeout)
    if status != 200:
        raise InferenceError(f"POST /v2/models/{model}/infer answered HTTP {status}: {answer.get('error', answer)}")
    outputs = {o["name"]: o for o in answer.get("outputs", [])}
    missing = [n for n in OUTPUT_NAMES if n not in outputs]
    if missing:
        raise InferenceError(f"the answer lacks output(s) {', '.join(missing)}: {answer}")
    flat = outputs["probabilities"]["data"]
    width = outputs["probabilities"]["shape"][-1]
    probabilities = [flat[i * width:(i + 1) * width] for i in range(len(rows))]
    return _result(rows, probabilities, outputs["label"]["data"])


def infer_binary(url, model, rows, host=None, timeout=10.0):
    """v2 REST through ``tritonclient.http`` with binary tensors; returns one dict per row."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tritonclient.http as httpclient  # pylint: disable=import-outside-toplevel
    from tritonclient.utils import InferenceServerException  # pylint: disable=import-outside-toplevel

    parts = urlsplit(url if "://" in url else "http://" + url)
    if parts.path not in ("", "/"):
        raise InferenceError(f"--url {url!r}: tritonclient needs scheme://host:port without a path")
    headers = {"Host": host} if host else None
    client = httpclient.InferenceServerClient(url=parts.netloc, ssl=parts.scheme == "https", connection_timeout=timeout, network_timeout=timeout)
    try:
        if not client.is_server_ready(headers=headers) or not client.is_model_ready(model, headers=headers):
            raise InferenceError(f"{url}: server or model {model} not ready")
        tensor = httpclient.InferInput(INPUT_NAME, [len(rows), 4], "FP32")
        tensor.set_data_from_numpy(np.asarray(rows, dtype=np.float32), binary_data=True)
        outputs = [httpclient.InferRequestedOutput(name, binary_data=True) for name in OUTPUT_NAMES]
        answer = client.infer(model, [tensor], outputs=outputs, headers=headers, request_id="nga4m-iris-binary")
        probabilities = answer.as_numpy("probabilities")
        labels = answer.as_numpy("label")
        if probabilities is None or labels is None:
            raise InferenceError(f"the answer lacks outputs: {answer.get_response()}")
        return _result(rows, probabilities.tolist(), labels.reshape(-1).tolist())
    except InferenceServerException as exc:
        raise InferenceError(f"tritonclient: {exc}") from exc
    finally:
        client.close()


def _row(text):
    values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"a row is 4 numbers (sepal length, sepal width, petal length, petal width in cm), got {text!r}")
    return tuple(values)


def main(argv=None):
    parser = argparse.ArgumentParser(description="v2 (Open Inference Protocol) inference against the served iris model")
    parser.add_argument("--url", required=True, help="base URL of the predictor or ingress, e.g. http://127.0.0.1:8080")
    parser.add_argument("--host", help="Host header (the InferenceService host name behind a KServe ingress)")
    parser.add_argument("--model", default="iris", help="model name in the Triton repository (default %(default)s)")
    parser.add_argument("--protocol", choices=("json", "binary", "both"), default="both")
    parser.add_argument("--row", action="append", type=_row, help="features of one flower: 4 numbers in cm; repeat for more")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for readiness (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    rows = [tuple(r) for r in (args.row or SAMPLE_ROWS)]
    try:
        wait_ready(args.url, args.model, args.host, args.timeout)
        results = {}
        if args.protocol in ("json", "both"):
            results["json"] = infer_json(args.url, args.model, rows, args.host)
        if args.protocol in ("binary", "both"):
            results["binary"] = infer_binary(args.url, args.model, rows, args.host)
    except InferenceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.protocol == "both" and [r["class_index"] for r in results["json"]] != [r["class_index"] for r in results["binary"]]:
        print("error: JSON and binary answers disagree", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for name, answers in results.items():
        for answer in answers:
            features = ",".join(f"{v:g}" for v in answer["features"])
            print(f"{name:6} {features:>20} -> {answer['class']} ({answer['probabilities'][answer['class_index']]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

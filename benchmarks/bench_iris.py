#!/usr/bin/env python
"""Benchmark: the iris example end to end, then v2 inference of the served model vs onnxruntime.

1. The pipeline (``examples/iris/pipeline.py --run-local``, KFP local runner) against a real
   S3 server (MinIO) and a real cluster sc1 with KServe's real controller, prepared by the
   kserve and object_storage roles (tests/helpers/iris_bed.py), as in
   tests/integration/test_iris_pipeline.py: wall time, including TensorFlow start-up in
   each step. ``--mlflow`` also logs the run to a real ``mlflow server``.
   ``--skip-pipeline`` publishes the small hand-made iris ONNX model of
   tests/helpers/onnx_models.py instead (same layout, through ``triton.publish``).
2. The published model served by the real Triton Inference Server
   (``examples/iris/serve_triton.py``: nvidia-pytriton's tritonserver with NGA4M's onnxruntime
   Python-based backend, reading the repository from S3) on loopback, one row per request:
   * ``infer.py json``  - ``examples/iris/infer.py``'s ``infer_json`` (stdlib HTTP, a new
     connection per request, as the CLI does);
   * ``tritonclient binary`` - one ``tritonclient.http`` client kept open, binary tensors;
   * ``tritonclient x{threads}`` - the same from ``--threads`` clients at once (throughput);
   against ``onnxruntime`` ``InferenceSession.run`` in this process on the same model bytes.

Prints p50/p99 latency, throughput and the overhead ratios (served / direct); never asserts.

    .venv/bin/python benchmarks/bench_iris.py [--requests 500] [--threads 4] [--mlflow] [--skip-pipeline]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers.iris_bed import BUCKET, IRIS, MODEL, PREFIX, IrisBed  # noqa: E402
from tests.helpers.playbook import ensure_collection_tree  # noqa: E402

sys.path.insert(0, str(ensure_collection_tree()))
sys.path.insert(0, str(IRIS))
import infer  # noqa: E402  (examples/iris/infer.py)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def timed(call, n: int) -> tuple[list[float], float]:
    """Latencies (s) of ``n`` sequential calls and the wall time of all of them."""
    lat = []
    t_all = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        call(i)
        lat.append(time.perf_counter() - t0)
    return lat, time.perf_counter() - t_all


def report(label: str, lat: list[float], wall: float, n: int) -> dict:
    row = {"p50": percentile(lat, 50), "p99": percentile(lat, 99), "rps": n / wall}
    print(f"  {label:<24} p50 {row['p50'] * 1e3:8.3f} ms  p99 {row['p99'] * 1e3:8.3f} ms  {row['rps']:9.1f} req/s")
    return row


def rows(n: int) -> np.ndarray:
    """``n`` iris-like rows (float32), cycling through the three known flowers with small jitter."""
    base = np.asarray(infer.SAMPLE_ROWS, dtype=np.float32)
    rng = np.random.default_rng(0)
    return (base[np.arange(n) % len(base)] + rng.normal(0, 0.05, (n, 4))).astype(np.float32)


def publish_small_model(iris: IrisBed, work: Path) -> None:
    from ansible_collections.nga4m.platform.plugins.module_utils import object_storage, triton  # noqa: PLC0415

    from tests.helpers import onnx_models  # noqa: PLC0415

    path = onnx_models.iris_classifier(work / "iris.onnx")
    store = object_storage.open_store(**iris.s3.options(BUCKET))
    triton.publish(store, PREFIX, MODEL, 1, str(path), {"max_batch_size": 16})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per transport (default %(default)s)")
    parser.add_argument("--threads", type=int, default=4, help="concurrent tritonclient clients for the throughput row")
    parser.add_argument("--mlflow", action="store_true", help="also start an mlflow server and log the run to it")
    parser.add_argument("--skip-pipeline", action="store_true", help="publish a small hand-made iris model instead of running the pipeline")
    args = parser.parse_args()
    n = args.requests

    with tempfile.TemporaryDirectory(prefix="bench-iris-") as tmp:
        work = Path(tmp)
        t0 = time.monotonic()
        iris = IrisBed(work, mlflow=args.mlflow)
        try:
            up = ", ".join(f"{k} {v:.1f} s" for k, v in iris.timings.items())
            print(f"iris example on {os.cpu_count()} CPUs: S3 (MinIO) {iris.s3.endpoint}, real sc1 with KServe's controller, "
                  f"mlflow {'on ' + iris.mlflow_uri if iris.mlflow_uri else 'off'} (services up in {time.monotonic() - t0:.1f} s: {up})")
            if args.skip_pipeline:
                publish_small_model(iris, work)
                print("pipeline: skipped (--skip-pipeline); published tests/helpers/onnx_models.iris_classifier")
            else:
                t0 = time.monotonic()
                run = iris.run_pipeline(work / "summary.json")
                took = time.monotonic() - t0
                if run.returncode != 0:
                    raise SystemExit(f"pipeline failed ({run.returncode}):\n{run.stdout[-4000:]}\n{run.stderr[-3000:]}")
                summary = json.loads((work / "summary.json").read_text())
                conv = summary["convert_metrics"]["metadata"]
                print(f"pipeline end to end (7 steps, KFP local runner): {took:.1f} s wall; ONNX accuracy {conv['onnx_accuracy']:.3f}, "
                      f"Keras/ONNX agreement {conv['keras_onnx_agreement']:.3f}")

            import onnxruntime as ort  # noqa: PLC0415
            import tritonclient.http as httpclient  # noqa: PLC0415

            from ansible_collections.nga4m.platform.plugins.module_utils import object_storage  # noqa: PLC0415

            store = object_storage.open_store(**iris.s3.options(BUCKET))
            session = ort.InferenceSession(store.get(f"{PREFIX}/{MODEL}/1/model.onnx"), providers=["CPUExecutionProvider"])
            server = iris.serve_triton()
            url = server.url
            port = server.http_port
            infer.wait_ready(url, MODEL, timeout=60)
            data = rows(n)
            single = [data[i:i + 1] for i in range(n)]

            def direct(i):
                session.run(["probabilities", "label"], {"input": single[i]})

            def via_json(i):
                infer.infer_json(url, MODEL, [tuple(float(v) for v in single[i][0])])

            client = httpclient.InferenceServerClient(url=f"127.0.0.1:{port}")
            outputs = [httpclient.InferRequestedOutput(name, binary_data=True) for name in infer.OUTPUT_NAMES]

            def via_binary(i, c=client):
                tensor = httpclient.InferInput(infer.INPUT_NAME, [1, 4], "FP32")
                tensor.set_data_from_numpy(single[i], binary_data=True)
                c.infer(MODEL, [tensor], outputs=outputs).as_numpy("label")

            # the answers agree before anything is timed (in requests of 8 rows: Triton refuses more than max_batch_size)
            served = [r for k in range(0, 32, 8) for r in infer.infer_json(url, MODEL, [tuple(map(float, row)) for row in data[k:k + 8]])]
            local = session.run(["label"], {"input": data[:32]})[0].reshape(-1).tolist()
            assert [r["class_index"] for r in served] == local, "served and direct answers differ"
            for call in (direct, via_json, via_binary):
                timed(call, min(50, n))  # warm-up

            print(f"\nv2 inference, one row per request, {n} requests each (loopback):")
            results = {"direct": report("onnxruntime direct", *timed(direct, n), n),
                       "json": report("infer.py json", *timed(via_json, n), n),
                       "binary": report("tritonclient binary", *timed(via_binary, n), n)}

            clients = [httpclient.InferenceServerClient(url=f"127.0.0.1:{port}") for _thread in range(args.threads)]
            lat_all: list[float] = []
            lock = threading.Lock()

            def worker(k):
                mine = []
                for i in range(k, n, args.threads):
                    t0 = time.perf_counter()
                    via_binary(i, clients[k])
                    mine.append(time.perf_counter() - t0)
                with lock:
                    lat_all.extend(mine)

            threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.threads)]
            t_all = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            results["concurrent"] = report(f"tritonclient x{args.threads}", lat_all, time.perf_counter() - t_all, n)
            for c in [client, *clients]:
                c.close()

            d = results["direct"]
            print("\noverhead of the served path vs direct onnxruntime (same model, same run):")
            for key, label in (("json", "infer.py json"), ("binary", "tritonclient binary"), ("concurrent", f"tritonclient x{args.threads}")):
                r = results[key]
                print(f"  {label:<24} p50 x{r['p50'] / d['p50']:7.1f}  p99 x{r['p99'] / d['p99']:7.1f}  "
                      f"throughput {r['rps'] / d['rps']:.4f} of direct  (+{(r['p50'] - d['p50']) * 1e3:.2f} ms per request at p50)")
        finally:
            iris.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

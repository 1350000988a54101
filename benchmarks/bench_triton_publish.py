#!/usr/bin/env python
"""Benchmark: publish a ~50 MB ONNX model to S3 (MinIO on loopback, tests/helpers/s3.py) with triton.publish().

Prints (never asserts):
* first publish vs second (idempotent) publish time, ratio target >= 10x;
* the module's model upload throughput vs a plain minio ``fput_object`` of the same
  file in the same run, ratio target >= 0.8;
* one ``ansible-playbook`` run of the module on the already published model (wall time,
  dominated by Ansible start-up), when ``--playbook`` is given.

Usage: .venv/bin/python benchmarks/bench_triton_publish.py [--size-mb 50] [--repeat 3] [--playbook]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.helpers.playbook import ensure_collection_tree, run_playbook  # noqa: E402

sys.path.insert(0, str(ensure_collection_tree()))
from ansible_collections.nga4m.platform.plugins.module_utils import object_storage, triton  # noqa: E402
from tests.helpers import onnx_models  # noqa: E402
from tests.helpers.s3 import S3Server  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=50)
    parser.add_argument("--repeat", type=int, default=4, help="upload comparisons (median reported)")
    parser.add_argument("--playbook", action="store_true", help="also time one ansible-playbook run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-triton-") as tmp, S3Server(tmp) as s3:
        model = onnx_models.large_model(Path(tmp) / "large.onnx", size_mb=args.size_mb)
        size = os.path.getsize(model)
        print(f"model: {size / 1e6:.1f} MB, S3: MinIO at {s3.endpoint}, part size {object_storage.DEFAULT_PART_SIZE >> 20 or 'minio default'}")
        store = object_storage.S3Store.from_options(**s3.options("bench"))
        options = {"max_batch_size": 8}
        client = s3.client()
        client.make_bucket("bench")
        client.fput_object("bench", "warmup.onnx", str(model))  # warm MinIO and the page cache before timing
        client.remove_object("bench", "warmup.onnx")

        t0 = time.perf_counter()
        first = triton.publish(store, "triton", "large", 1, str(model), options, create_bucket=True)
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        second = triton.publish(store, "triton", "large", 1, str(model), options, create_bucket=True)
        t_second = time.perf_counter() - t0
        assert first["changed"] and not second["changed"] and second["uploaded"] == []
        print(f"publish() first run:  {t_first:.3f} s (uploaded {len(first['uploaded'])} objects)")
        print(f"publish() second run: {t_second:.3f} s (changed={second['changed']}, uploaded={second['uploaded']})")
        print(f"first/second ratio: {t_first / t_second:.1f}x (target >= 10x)")

        ours, plain = [], []
        for i in range(args.repeat):  # alternate who goes first: neither gains from going second
            for who in (("ours", "plain") if i % 2 == 0 else ("plain", "ours")):
                t0 = time.perf_counter()
                if who == "ours":
                    store.put_file(f"cmp/ours-{i}.onnx", str(model), sha256=first["sha256"])
                    ours.append(time.perf_counter() - t0)
                else:
                    client.fput_object("bench", f"cmp/plain-{i}.onnx", str(model))
                    plain.append(time.perf_counter() - t0)
        # a fresh publish of a new version (includes hashing and the onnx checker)
        t0 = time.perf_counter()
        triton.publish(store, "triton", "large", 2, str(model), options)
        t_full = time.perf_counter() - t0
        mb = size / 1e6
        ours_tp, plain_tp = mb / statistics.median(ours), mb / statistics.median(plain)
        print(f"upload S3Store.put_file: median {statistics.median(ours):.3f} s = {ours_tp:.1f} MB/s  ({', '.join(f'{t:.2f}' for t in ours)})")
        print(f"upload minio fput_object: median {statistics.median(plain):.3f} s = {plain_tp:.1f} MB/s  ({', '.join(f'{t:.2f}' for t in plain)})")
        print(f"throughput ratio module/plain: {ours_tp / plain_tp:.2f} (target >= 0.8)")
        print(f"full publish() of a new version incl. sha256 + onnx checker: {t_full:.3f} s = {mb / t_full:.1f} MB/s"
              f" (ratio to plain fput_object {mb / t_full / plain_tp:.2f})")

        if args.playbook:
            tmr = {"name": "large", "version": 1, "model_file": str(model), "prefix": "triton", "max_batch_size": 8,
                   **s3.options("bench")}
            t0 = time.perf_counter()
            run = run_playbook(REPO / "tests" / "integration" / "playbooks" / "triton_publish.yml", extra_vars={"tmr": tmr})
            t_pb = time.perf_counter() - t0
            res = run.result("Publish model")
            print(f"ansible-playbook run on the published model: {t_pb:.2f} s, rc={run.rc}, changed={res.get('changed')},"
                  f" uploaded={res.get('uploaded')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

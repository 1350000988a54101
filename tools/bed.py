#!/usr/bin/env python
"""The local multicluster test bed: real Kubernetes control planes on this machine.

  tools/bed start    [--clusters pc,sc1,sc2] [--state-dir DIR] [--pod-ready-seconds S] [--s3-host ADDR]
  tools/bed start-s3 [--s3-host ADDR] [--state-dir DIR]
  tools/bed stop     [--state-dir DIR]
  tools/bed status   [--state-dir DIR]

start: one etcd and, per cluster, the real kube-apiserver, kube-controller-manager,
  kube-scheduler and kwok (simulated nodes and pods), built from pinned Go modules by
  tools/gobuild; a helm chart repository serving tests/fixtures/charts on loopback; a MinIO
  server as the shared object storage (keys generated into DIR/s3.json, mode 0600). Writes
  DIR/<cluster>.kubeconfig, DIR/clusters.json, DIR/bed.json and DIR/env.sh:
    NGA4M_BED_DIR   the state dir (inventories/demo reads kubeconfigs, bed.json and s3.json there)
    PATH            the pinned kubectl and helm first
    HELM_*          the bed's own helm home (DIR/helm), never the user's
  --pod-ready-seconds S: a scheduled pod becomes Running and Ready S seconds after it is
    created (kwok's stage delay; default 0). Starting a running bed is a no-op.
start-s3: only the S3 server and DIR/s3.json, listening on ADDR (default 127.0.0.1), e.g. an
  address that kind clusters reach.
Every process the bed starts runs in its own session and carries NGA4M_BED_OWNER=DIR in its
  environment.
stop: stops what `start` recorded, then any process carrying the marker; exit 1 (naming them)
  when one survives SIGKILL; idempotent.
status: exit 0 and the clusters when everything the bed started runs; 4 (listing them) when only
  some of it does; 3 when no process it started is alive.
Default state dir: <repo>/.cache/bed/default (or $NGA4M_BED_DIR).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.bed import Bed, read_state, status_dir, stop_dir  # noqa: E402
from tests.helpers.kubebed import BedError  # noqa: E402

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tools/bed", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "start-s3", "stop", "status"])
    parser.add_argument("--clusters", default="pc,sc1,sc2")
    parser.add_argument("--state-dir", default=os.environ.get("NGA4M_BED_DIR") or str(ROOT / ".cache" / "bed" / "default"))
    parser.add_argument("--pod-ready-seconds", type=float, default=0.0)
    parser.add_argument("--s3-host", default="127.0.0.1")
    args = parser.parse_args(argv)
    names = [n for n in args.clusters.split(",") if n]
    if args.command == "start":
        if not names:
            parser.error("--clusters is empty")
        bad = [n for n in names if not DNS_LABEL.match(n)]
        if bad:
            parser.error(f"cluster name(s) {', '.join(bad)} are not DNS-1123 labels")
        if len(set(names)) != len(names):
            parser.error("--clusters names a cluster twice")
    if not args.pod_ready_seconds >= 0:
        parser.error(f"--pod-ready-seconds takes seconds >= 0, got {args.pod_ready_seconds}")
    state_dir = Path(args.state_dir)
    if args.command in ("status", "stop") and not state_dir.is_dir():
        print(f"bed: not running in {state_dir} (no process it started is alive)")
        return 3 if args.command == "status" else 0
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir = state_dir.resolve()

    if args.command == "status":
        code, text = status_dir(state_dir)
        print(text)
        return code
    if args.command == "stop":
        escaped, left = stop_dir(state_dir)
        if escaped:
            print("bed: stopped processes the bed started that had left what it recorded:", file=sys.stderr)
            for pid, cmd in escaped:
                print(f"  {pid}\t{cmd}", file=sys.stderr)
        if left:
            print(f"bed: these processes the bed started for {state_dir} are still alive after SIGKILL:", file=sys.stderr)
            for pid, cmd in left:
                print(f"  {pid}\t{cmd}", file=sys.stderr)
            return 1
        print(f"bed: stopped in {state_dir}")
        return 0

    code, text = status_dir(state_dir)
    if code == 0:
        s3_only = not read_state(state_dir).get("clusters") and not read_state(state_dir).get("charts_url")
        if args.command == "start" and not s3_only:
            print(f"bed: already running in {state_dir}")
            print(text)
            return 0
        if args.command == "start-s3" and s3_only:
            print(f"bed: S3 server already running in {state_dir}: {read_state(state_dir)['s3_endpoint']}")
            return 0
    if code != 3:
        stop_dir(state_dir)  # what an earlier start left (e.g. an S3 server only)
    bed = Bed(state_dir, pod_ready_seconds=args.pod_ready_seconds, s3_host=args.s3_host)
    try:
        if args.command == "start-s3":
            bed.start(clusters=(), charts=False)
            print(f"bed: S3 server started in {state_dir}: {bed.s3['endpoint']}")
            return 0
        bed.start(clusters=names)
    except BedError as exc:
        print(f"bed: {exc}", file=sys.stderr)
        return 1
    print(status_dir(state_dir)[1])
    print(f"bed: source {state_dir}/env.sh   # NGA4M_BED_DIR, the pinned kubectl/helm on PATH, the bed's helm home")
    return 0


if __name__ == "__main__":
    sys.exit(main())

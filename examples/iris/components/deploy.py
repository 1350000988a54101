# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Publish the ONNX model in Triton layout and serve it as a KServe InferenceService."""

from kfp.dsl import Input, Model


def publish(
    onnx_model: Input[Model],
    s3_endpoint: str,
    s3_secure: bool,
    s3_region: str,
    bucket: str,
    repository_prefix: str,
    model_name: str,
    model_version: int,
    max_batch_size: int,
) -> str:
    """Publish ``<prefix>/<model>/<version>/model.onnx`` + ``<prefix>/<model>/config.pbtxt``.

    Calls the collection's ``triton.publish`` (the one implementation of the
    Triton layout, also behind the ``triton_model_repository`` module): config
    derived from the ONNX graph and checked against Triton's ModelConfig schema,
    idempotent by checksum, the model written before its config. Returns the
    repository root ``s3://<bucket>/<prefix>`` (the InferenceService storageUri).
    """
    import os
    import sys

    for entry in reversed(os.environ.get("NGA4M_COLLECTION_PATH", "").split(os.pathsep)):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)
    from ansible_collections.nga4m.platform.plugins.module_utils import triton
    from ansible_collections.nga4m.platform.plugins.module_utils.object_storage import open_store_from_env

    if not s3_endpoint:
        raise ValueError("s3_endpoint is empty: give the S3 endpoint (host:port or http(s)://host:port) as a pipeline parameter")
    store = open_store_from_env(s3_endpoint, bucket, secure=s3_secure, region=s3_region)
    options = {"max_batch_size": max_batch_size, "instance_group": [{"kind": "KIND_CPU", "count": 1}]}
    result = triton.publish(store, repository_prefix, model_name, model_version, model_path=onnx_model.path, config_options=options)
    print(f"{'published' if result['changed'] else 'already published'} {model_name} version {result['version']}"
          f" at {result['storage_uri']} (uploaded: {', '.join(result['uploaded']) or 'nothing'})")
    print(result["config"])
    return result["storage_uri"]


def serve(
    storage_uri: str,
    s3_endpoint: str,
    s3_secure: bool,
    s3_region: str,
    bucket: str,
    kubeconfigs_prefix: str,
    target_cluster: str,
    namespace: str,
    isvc_name: str,
    runtime: str,
    model_format: str,
    service_account: str,
    model_name: str,
    model_version: int,
    ready_timeout: int,
) -> str:
    """Create or update the InferenceService on ``target_cluster`` and wait until it is Ready.

    The cluster is reached with its least-privilege deployer kubeconfig, read
    from ``s3://<bucket>/<kubeconfigs_prefix>/<target_cluster>`` (the
    object_storage role writes it). Server-side apply with field manager
    ``nga4m-iris-pipeline`` makes re-runs idempotent. Returns ``status.url``.
    """
    import os
    import sys
    import time

    for entry in reversed(os.environ.get("NGA4M_COLLECTION_PATH", "").split(os.pathsep)):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)
    import yaml
    from ansible_collections.nga4m.platform.plugins.module_utils.object_storage import join_key, open_store_from_env
    from kubernetes import config as k8s_config
    from kubernetes import dynamic
    from kubernetes.client import exceptions as k8s_exceptions

    if not s3_endpoint:
        raise ValueError("s3_endpoint is empty: give the S3 endpoint (host:port or http(s)://host:port) as a pipeline parameter")
    if not storage_uri.startswith("s3://"):
        raise ValueError(f"storage_uri {storage_uri!r} is not an s3:// URI")
    store = open_store_from_env(s3_endpoint, bucket, secure=s3_secure, region=s3_region)
    key = join_key(kubeconfigs_prefix, target_cluster)
    raw = store.get(key)
    if raw is None:
        raise FileNotFoundError(f"no deployer kubeconfig for cluster {target_cluster!r} at {store.uri(key)}: run the object_storage role"
                                " (it writes one per secondary cluster) or check target_cluster")
    api = k8s_config.new_client_from_config_dict(yaml.safe_load(raw))
    client = dynamic.DynamicClient(api)
    resource = client.resources.get(api_version="serving.kserve.io/v1beta1", kind="InferenceService")

    predictor = {
        "serviceAccountName": service_account,
        "model": {
            "modelFormat": {"name": model_format},
            "runtime": runtime,
            "protocolVersion": "v2",
            "storageUri": storage_uri,
        },
    }
    body = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": isvc_name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "nga4m", "app.kubernetes.io/name": isvc_name},
            "annotations": {
                "serving.kserve.io/enable-prometheus-scraping": "true",
                "nga4m.io/triton-model": model_name,
                "nga4m.io/triton-model-version": str(model_version),
            },
        },
        "spec": {"predictor": predictor},
    }
    applied = client.server_side_apply(resource, body=body, namespace=namespace, field_manager="nga4m-iris-pipeline", force_conflicts=True)
    generation = applied.metadata.generation
    print(f"applied InferenceService {namespace}/{isvc_name} on {target_cluster} (generation {generation}, storageUri {storage_uri})")

    deadline = time.monotonic() + ready_timeout
    conditions = []
    while True:
        try:
            current = client.get(resource, name=isvc_name, namespace=namespace).to_dict()
        except k8s_exceptions.ApiException as exc:
            if exc.status not in (404, 429, 500, 502, 503, 504):
                raise
            current = {}
        status = current.get("status") or {}
        conditions = status.get("conditions") or []
        observed = status.get("observedGeneration")
        fresh = observed is None or generation is None or observed >= generation
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        if ready and fresh:
            url = status.get("url") or ""
            print(f"InferenceService {namespace}/{isvc_name} is Ready at {url}")
            return url
        if time.monotonic() >= deadline:
            shown = "; ".join(f"{c.get('type')}={c.get('status')} {c.get('reason', '')} {c.get('message', '')}".strip() for c in conditions)
            raise TimeoutError(f"InferenceService {namespace}/{isvc_name} on {target_cluster} not Ready after {ready_timeout}s"
                               f" (conditions: {shown or 'none yet'}); check the predictor pods and the storage-initializer logs")
        time.sleep(2)

# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The NGA4M iris pipeline (Kubeflow Pipelines v2).

load_data (CSV from object storage) -> preprocess (split, scale) -> build_model
(Keras, TensorFlow backend) -> train (KFP Metrics, MLflow run + model when
``mlflow_tracking_uri`` is set) -> convert (SavedModel -> ONNX with tf2onnx,
Keras vs ONNX predictions) -> publish (Triton layout, the collection's
``triton.publish``) -> serve (KServe InferenceService on the chosen secondary
cluster, Triton runtime, v2 protocol, waits for Ready).

Credentials never live in code: on Kubeflow the steps that touch object storage
get ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` from the Secret named by
``--credentials-secret`` (template: manifests/pipeline-credentials-secret.yaml)
through ``kfp.kubernetes.use_secret_as_env``; the local runner ignores that, so
``--run-local`` passes the caller's environment to the step processes instead.

CLI::

    python examples/iris/pipeline.py --compile iris_pipeline.yaml [--image-train IMG] [--image-publish IMG]
    AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \\
      python examples/iris/pipeline.py --run-local --s3-endpoint 127.0.0.1:9000 --bucket nga4m [...]

Every ``--<parameter>`` of ``--run-local`` defaults to the environment variable
``NGA4M_IRIS_<PARAMETER>`` (upper case, ``-`` -> ``_``), then to the pipeline default.
"""

import argparse
import inspect
import json
import os
import subprocess
import sys
from typing import NamedTuple

from kfp import compiler, dsl, kubernetes
from kfp.dsl import Dataset, Metrics, Model

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import components  # noqa: E402  pylint: disable=wrong-import-position

PIPELINE_NAME = "nga4m-iris"
DEFAULT_TRAIN_IMAGE = "registry.example.com/nga4m/iris-train:1.0.0"
DEFAULT_PUBLISH_IMAGE = "registry.example.com/nga4m/iris-publish:1.0.0"
DEFAULT_CREDENTIALS_SECRET = "nga4m-pipeline-credentials"
# Secret data key -> environment variable of the steps that talk to object storage
SECRET_KEY_TO_ENV = {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"}


def build_pipeline(train_image=DEFAULT_TRAIN_IMAGE, publish_image=DEFAULT_PUBLISH_IMAGE, credentials_secret=DEFAULT_CREDENTIALS_SECRET):
    """Return the pipeline function for the given step images and credentials Secret."""

    def component(func, image):
        # The images carry kfp and every dependency: nothing is pip-installed when a step starts.
        return dsl.component(func=func, base_image=image, install_kfp_package=False)

    load_data = component(components.load_data, publish_image)
    preprocess = component(components.preprocess, train_image)
    build_model = component(components.build_model, train_image)
    train = component(components.train, train_image)
    convert = component(components.convert, train_image)
    publish = component(components.publish, publish_image)
    serve = component(components.serve, publish_image)

    def with_credentials(task):
        # NGA4M_COLLECTION_PATH comes from the image (ENV), so the local runner's own value is not overridden
        kubernetes.use_secret_as_env(task, secret_name=credentials_secret, secret_key_to_env=SECRET_KEY_TO_ENV)
        return task

    @dsl.pipeline(name=PIPELINE_NAME, description="Iris: CSV from object storage -> Keras -> ONNX -> Triton layout -> KServe InferenceService")
    def iris_pipeline(  # pylint: disable=too-many-arguments,too-many-locals
        s3_endpoint: str,
        s3_secure: bool = False,
        s3_region: str = "us-east-1",
        bucket: str = "nga4m",
        dataset_key: str = "datasets/iris/iris.csv",
        test_size: float = 0.3,
        seed: int = 0,
        hidden_units: int = 16,
        learning_rate: float = 0.01,
        epochs: int = 100,
        batch_size: int = 16,
        opset: int = 17,
        mlflow_tracking_uri: str = "",
        mlflow_experiment: str = "iris",
        repository_prefix: str = "models/triton",
        model_name: str = "iris",
        model_version: int = 1,
        max_batch_size: int = 16,
        kubeconfigs_prefix: str = "kubeconfigs",
        target_cluster: str = "sc1",
        namespace: str = "models",
        isvc_name: str = "iris",
        runtime: str = "nga4m-tritonserver",
        model_format: str = "triton",
        service_account: str = "kserve-models",
        ready_timeout: int = 600,
    ) -> NamedTuple("Outputs", storage_uri=str, url=str, mlflow_run_id=str, onnx_model=Model, predictions=Dataset,
                    train_metrics=Metrics, convert_metrics=Metrics):
        load = with_credentials(load_data(s3_endpoint=s3_endpoint, s3_secure=s3_secure, s3_region=s3_region, bucket=bucket,
                                          dataset_key=dataset_key))
        load.set_caching_options(False).set_display_name("read CSV from object storage")
        prep = preprocess(dataset=load.outputs["dataset"], test_size=test_size, seed=seed).set_display_name("split and scale")
        built = build_model(hidden_units=hidden_units, learning_rate=learning_rate, seed=seed).set_display_name("build Keras model")
        trained = train(model=built.outputs["model"], train_data=prep.outputs["train_data"], test_data=prep.outputs["test_data"],
                        epochs=epochs, batch_size=batch_size, seed=seed, mlflow_tracking_uri=mlflow_tracking_uri,
                        mlflow_experiment=mlflow_experiment)
        trained.set_display_name("train").set_cpu_request("1").set_memory_request("1G").set_memory_limit("4G")
        converted = convert(trained_model=trained.outputs["trained_model"], scaler=prep.outputs["scaler"], test_raw=prep.outputs["test_raw"],
                            opset=opset, mlflow_tracking_uri=mlflow_tracking_uri, mlflow_run_id=trained.outputs["Output"])
        converted.set_display_name("convert to ONNX").set_memory_request("1G").set_memory_limit("4G")
        published = with_credentials(publish(onnx_model=converted.outputs["onnx_model"], s3_endpoint=s3_endpoint, s3_secure=s3_secure,
                                             s3_region=s3_region, bucket=bucket, repository_prefix=repository_prefix,
                                             model_name=model_name, model_version=model_version, max_batch_size=max_batch_size))
        published.set_caching_options(False).set_display_name("publish in Triton layout")
        served = with_credentials(serve(storage_uri=published.output, s3_endpoint=s3_endpoint, s3_secure=s3_secure, s3_region=s3_region,
                                        bucket=bucket, kubeconfigs_prefix=kubeconfigs_prefix, target_cluster=target_cluster,
                                        namespace=namespace, isvc_name=isvc_name, runtime=runtime, model_format=model_format,
                                        service_account=service_account, model_name=model_name, model_version=model_version,
                                        ready_timeout=ready_timeout))
        served.set_caching_options(False).set_display_name("serve on the secondary cluster")
        outputs = NamedTuple("Outputs", storage_uri=str, url=str, mlflow_run_id=str, onnx_model=Model, predictions=Dataset,
                             train_metrics=Metrics, convert_metrics=Metrics)
        return outputs(storage_uri=published.output, url=served.output, mlflow_run_id=trained.outputs["Output"],
                       onnx_model=converted.outputs["onnx_model"], predictions=converted.outputs["predictions"],
                       train_metrics=trained.outputs["metrics"], convert_metrics=converted.outputs["metrics"])

    return iris_pipeline


def pipeline_parameters():
    """``{name: (annotation, default or inspect._empty)}`` of the pipeline function, in order."""
    signature = inspect.signature(build_pipeline().pipeline_func)
    return {name: (p.annotation, p.default) for name, p in signature.parameters.items()}


def compile_pipeline(output, **images):
    compiler.Compiler().compile(build_pipeline(**images), package_path=output)
    return output


def _parse_bool(text):
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def _collection_path():
    """The directory holding ``ansible_collections/nga4m/platform`` for the local runner."""
    if os.environ.get("NGA4M_COLLECTION_PATH"):
        return os.environ["NGA4M_COLLECTION_PATH"]
    root = os.path.abspath(os.path.join(HERE, "..", ".."))  # repository root = collection root
    if not os.path.exists(os.path.join(root, "galaxy.yml")):
        raise SystemExit("set NGA4M_COLLECTION_PATH to a directory containing ansible_collections/nga4m/platform")
    tool = os.path.join(root, "tools", "collection-tree")  # links the repo as ansible_collections/nga4m/platform
    return subprocess.run([tool], capture_output=True, text=True, check=True).stdout.strip()


def run_local(params, pipeline_root):
    """Run the pipeline with the KFP local SubprocessRunner in this Python environment; return its outputs."""
    from kfp import local  # pylint: disable=import-outside-toplevel

    for name in SECRET_KEY_TO_ENV.values():
        if not os.environ.get(name):
            raise SystemExit(f"{name} is not set: --run-local passes S3 credentials to the steps through the environment")
    os.environ["NGA4M_COLLECTION_PATH"] = _collection_path()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=pipeline_root, raise_on_error=True)
    task = build_pipeline()(**params)
    summary = {}
    for name, value in task.outputs.items():
        if isinstance(value, dsl.Artifact):
            summary[name] = {"uri": value.uri, "path": value.path, "metadata": dict(value.metadata)}
        else:
            summary[name] = value
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description="NGA4M iris pipeline: compile it, or run it locally (KFP SubprocessRunner)")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--compile", metavar="OUT.yaml", help="compile the pipeline to this YAML file")
    action.add_argument("--run-local", action="store_true", help="run every step here with kfp.local.SubprocessRunner(use_venv=False)")
    parser.add_argument("--image-train", default=DEFAULT_TRAIN_IMAGE, help="image of the preprocess/build/train/convert steps (images/iris-train)")
    parser.add_argument("--image-publish", default=DEFAULT_PUBLISH_IMAGE, help="image of the load/publish/serve steps (images/iris-publish)")
    parser.add_argument("--credentials-secret", default=DEFAULT_CREDENTIALS_SECRET, help="Kubernetes Secret with the S3 credentials")
    parser.add_argument("--pipeline-root", default=os.path.join(os.getcwd(), ".kfp-local"), help="local runner artifact directory")
    parser.add_argument("--summary", metavar="FILE.json", help="--run-local: also write the pipeline outputs as JSON here")
    for name, (annotation, default) in pipeline_parameters().items():
        env = "NGA4M_IRIS_" + name.upper()
        value = os.environ.get(env, None if default is inspect.Parameter.empty else default)
        kind = _parse_bool if annotation is bool else annotation
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=value,
                            help=f"pipeline parameter (env {env}; default {default if default is not inspect.Parameter.empty else 'required'})")
    args = parser.parse_args(argv)
    if args.compile:
        compile_pipeline(args.compile, train_image=args.image_train, publish_image=args.image_publish,
                         credentials_secret=args.credentials_secret)
        print(f"compiled {args.compile}")
        return 0
    params = {}
    for name, (annotation, _default) in pipeline_parameters().items():
        value = getattr(args, name)
        if value is None:
            parser.error(f"--{name.replace('_', '-')} (or NGA4M_IRIS_{name.upper()}) is required")
        params[name] = _parse_bool(value) if annotation is bool else annotation(value)
    summary = run_local(params, os.path.abspath(args.pipeline_root))
    text = json.dumps(summary, indent=2, sort_keys=True, default=str)
    if args.summary:
        with open(args.summary, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

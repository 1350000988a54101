# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the iris CSV from object storage; split and scale it."""

from kfp.dsl import Artifact, Dataset, Input, Output


def load_data(
    s3_endpoint: str,
    s3_secure: bool,
    s3_region: str,
    bucket: str,
    dataset_key: str,
    dataset: Output[Dataset],
):
    """Copy ``s3://<bucket>/<dataset_key>`` (the iris CSV) into the ``dataset`` artifact.

    Credentials: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` from the
    environment (a Kubernetes Secret mounted by the pipeline). Object storage is
    reached through the collection's ``object_storage.open_store``.
    """
    import csv
    import io
    import os
    import sys

    for entry in reversed(os.environ.get("NGA4M_COLLECTION_PATH", "").split(os.pathsep)):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)
    from ansible_collections.nga4m.platform.plugins.module_utils.object_storage import open_store_from_env

    if not s3_endpoint:
        raise ValueError("s3_endpoint is empty: give the S3 endpoint (host:port or http(s)://host:port) as a pipeline parameter")
    store = open_store_from_env(s3_endpoint, bucket, secure=s3_secure, region=s3_region)
    data = store.get(dataset_key)
    if data is None:
        raise FileNotFoundError(f"{store.uri(dataset_key)} does not exist: upload examples/iris/data/iris.csv there (the object_storage role does)")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    expected = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    if not rows or [c.strip() for c in rows[0]] != expected:
        raise ValueError(f"{store.uri(dataset_key)}: header must be {','.join(expected)}, got {rows[0] if rows else 'an empty file'}")
    with open(dataset.path, "wb") as handle:
        handle.write(data)
    dataset.metadata["source"] = store.uri(dataset_key)
    dataset.metadata["rows"] = len(rows) - 1
    print(f"read {len(rows) - 1} rows from {store.uri(dataset_key)}")


def preprocess(
    dataset: Input[Dataset],
    test_size: float,
    seed: int,
    train_data: Output[Dataset],
    test_data: Output[Dataset],
    test_raw: Output[Dataset],
    scaler: Output[Artifact],
):
    """Stratified train/test split and standard scaling fitted on the training rows.

    ``train_data``/``test_data``: CSV of the 4 scaled features and ``label``
    (class index: setosa=0, versicolor=1, virginica=2). ``test_raw``: the test rows
    unscaled (cm), for checking the served model, which scales inside the graph.
    ``scaler``: JSON with features, class names, mean, scale and variance.
    """
    import json

    import pandas as pd
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    class_names = ["setosa", "versicolor", "virginica"]
    frame = pd.read_csv(dataset.path)
    species = frame["species"]
    if species.dtype == object:
        unknown = sorted(set(species) - set(class_names))
        if unknown:
            raise ValueError(f"unknown species {unknown}; expected {class_names}")
        labels = species.map({name: index for index, name in enumerate(class_names)})
    else:
        labels = species.astype(int)
        if not labels.between(0, len(class_names) - 1).all():
            raise ValueError(f"species indices must be 0..{len(class_names) - 1}")
    x = frame[features].astype("float32")
    y = labels.astype("int64")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    fitted = StandardScaler().fit(x_train)

    def write(path, values, target):
        out = pd.DataFrame(values, columns=features)
        out["label"] = target.to_numpy()
        out.to_csv(path, index=False, float_format="%.7g")

    write(train_data.path, fitted.transform(x_train), y_train)
    write(test_data.path, fitted.transform(x_test), y_test)
    write(test_raw.path, x_test.to_numpy(), y_test)
    with open(scaler.path, "w", encoding="utf-8") as handle:
        json.dump({"features": features, "class_names": class_names, "mean": fitted.mean_.tolist(),
                   "scale": fitted.scale_.tolist(), "variance": fitted.var_.tolist()}, handle, indent=2)
    for artifact, count in ((train_data, len(y_train)), (test_data, len(y_test)), (test_raw, len(y_test))):
        artifact.metadata["rows"] = int(count)
    print(f"split {len(y)} rows: {len(y_train)} train, {len(y_test)} test (seed {seed})")

# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build, train and convert the Keras (TensorFlow backend) iris classifier."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output


def build_model(hidden_units: int, learning_rate: float, seed: int, model: Output[Model]):
    """A small dense classifier over the 4 *scaled* features, compiled, weights seeded; saved as ``.keras``."""
    import os
    import shutil

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(seed)
    net = keras.Sequential(
        [
            keras.Input(shape=(4,), name="features"),
            keras.layers.Dense(hidden_units, activation="relu", name="hidden"),
            keras.layers.Dense(3, activation="softmax", name="classes"),
        ],
        name="iris_classifier",
    )
    net.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    net.save(model.path + ".keras")  # Keras insists on the suffix; the artifact is the bare path
    shutil.move(model.path + ".keras", model.path)
    model.metadata.update({"framework": "keras", "backend": keras.backend.backend(), "keras": keras.__version__,
                           "hidden_units": hidden_units, "parameters": int(net.count_params())})


def train(
    model: Input[Model],
    train_data: Input[Dataset],
    test_data: Input[Dataset],
    epochs: int,
    batch_size: int,
    seed: int,
    mlflow_tracking_uri: str,
    mlflow_experiment: str,
    trained_model: Output[Model],
    metrics: Output[Metrics],
) -> str:
    """Train on the scaled training split; report accuracy/loss as KFP Metrics (and to MLflow when configured).

    ``epochs`` passes over the 105 training rows run as one Keras epoch over the
    rows repeated ``epochs`` times (Keras' per-epoch overhead dwarfs such tiny
    epochs). Returns the MLflow run id ('' when ``mlflow_tracking_uri`` is empty).
    """
    import os
    import shutil
    import tempfile

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import pandas as pd
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    keras.utils.set_random_seed(seed)
    features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    train_frame, test_frame = pd.read_csv(train_data.path), pd.read_csv(test_data.path)
    x_train, y_train = train_frame[features].to_numpy("float32"), train_frame["label"].to_numpy("int64")
    x_test, y_test = test_frame[features].to_numpy("float32"), test_frame["label"].to_numpy("int64")

    with tempfile.TemporaryDirectory() as tmp:
        keras_file = os.path.join(tmp, "model.keras")
        shutil.copyfile(model.path, keras_file)
        net = keras.models.load_model(keras_file)
    history = net.fit(np.tile(x_train, (epochs, 1)), np.tile(y_train, epochs), epochs=1, batch_size=batch_size, shuffle=True, verbose=0)
    train_loss, train_accuracy = net.evaluate(x_train, y_train, verbose=0)
    test_loss, test_accuracy = net.evaluate(x_test, y_test, verbose=0)
    values = {"accuracy": float(test_accuracy), "loss": float(test_loss), "train_accuracy": float(train_accuracy),
              "train_loss": float(train_loss), "final_batch_loss": float(history.history["loss"][-1])}
    for name, value in values.items():
        metrics.log_metric(name, round(value, 6))
    print("metrics:", values)
    net.save(trained_model.path + ".keras")
    shutil.move(trained_model.path + ".keras", trained_model.path)
    trained_model.metadata.update({"framework": "keras", "test_accuracy": values["accuracy"]})

    run_id = ""
    if mlflow_tracking_uri:
        import mlflow
        from mlflow.models import infer_signature

        mlflow.set_tracking_uri(mlflow_tracking_uri)
        mlflow.set_experiment(mlflow_experiment or "iris")
        with mlflow.start_run(run_name="iris-keras") as run:
            run_id = run.info.run_id
            mlflow.log_params({"epochs": epochs, "batch_size": batch_size, "seed": seed, "train_rows": len(y_train), "test_rows": len(y_test)})
            mlflow.log_metrics(values)
            mlflow.set_tags({"nga4m.pipeline": "iris", "nga4m.step": "train"})
            signature = infer_signature(x_test[:5], net.predict(x_test[:5], verbose=0))
            mlflow.keras.log_model(net, name="model", signature=signature,
                                   pip_requirements=[f"keras=={keras.__version__}", f"tensorflow-cpu=={tf.__version__}"])
        trained_model.metadata["mlflow_run_id"] = run_id
        print(f"logged run {run_id} to {mlflow_tracking_uri}")
    return run_id


def convert(
    trained_model: Input[Model],
    scaler: Input[Artifact],
    test_raw: Input[Dataset],
    opset: int,
    mlflow_tracking_uri: str,
    mlflow_run_id: str,
    onnx_model: Output[Model],
    predictions: Output[Dataset],
    metrics: Output[Metrics],
):
    """Keras -> SavedModel -> ONNX (tf2onnx), with the scaling inside the graph.

    The served graph takes raw features (cm): ``input`` FP32 [batch, 4] ->
    ``probabilities`` FP32 [batch, 3] and ``label`` INT64 [batch, 1] (class index).
    Keras and ONNX predictions on the held-out rows go to ``predictions`` (CSV);
    the step fails when the two disagree on a class or differ by more than 1e-4.
    """
    import json
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import onnxruntime as ort
    import pandas as pd
    import tensorflow as tf

    with open(scaler.path, encoding="utf-8") as handle:
        scaling = json.load(handle)
    features, class_names = scaling["features"], scaling["class_names"]
    with tempfile.TemporaryDirectory() as tmp:
        keras_file = os.path.join(tmp, "model.keras")
        shutil.copyfile(trained_model.path, keras_file)
        core = keras.models.load_model(keras_file)

        raw = keras.Input(shape=(4,), name="input", dtype="float32")
        scaled = keras.layers.Normalization(mean=scaling["mean"], variance=scaling["variance"], name="scale")(raw)
        probabilities = keras.layers.Identity(name="probabilities")(core(scaled))
        # tf.argmax, not keras.ops.argmax: the latter emits Bitcast/BitwiseAnd, which ONNX lacks
        label = keras.layers.Lambda(lambda p: tf.expand_dims(tf.argmax(p, axis=-1, output_type=tf.int64), -1), name="label")(probabilities)
        serving = keras.Model(raw, {"probabilities": probabilities, "label": label}, name="iris_serving")

        saved_model = os.path.join(tmp, "saved_model")
        serving.export(saved_model, format="tf_saved_model", verbose=False)
        onnx_file = os.path.join(tmp, "model.onnx")
        command = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", saved_model, "--output", onnx_file, "--opset", str(opset)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not os.path.exists(onnx_file):
            raise RuntimeError(f"tf2onnx failed ({done.returncode}):\n{done.stderr[-4000:]}")
        shutil.copyfile(onnx_file, onnx_model.path)

    frame = pd.read_csv(test_raw.path)
    x_test, y_test = frame[features].to_numpy("float32"), frame["label"].to_numpy("int64")
    keras_out = serving.predict(x_test, verbose=0)
    session = ort.InferenceSession(onnx_model.path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    onnx_out = dict(zip(names, session.run(None, {session.get_inputs()[0].name: x_test})))
    keras_prob, onnx_prob = np.asarray(keras_out["probabilities"]), onnx_out["probabilities"]
    keras_class, onnx_class = keras_prob.argmax(axis=1), onnx_out["label"].reshape(-1)
    max_diff = float(np.abs(keras_prob - onnx_prob).max())
    agreement = float((keras_class == onnx_class).mean())
    values = {"onnx_accuracy": float((onnx_class == y_test).mean()), "keras_accuracy": float((keras_class == y_test).mean()),
              "keras_onnx_agreement": agreement, "keras_onnx_max_abs_diff": max_diff}
    for name, value in values.items():
        metrics.log_metric(name, round(value, 6))
    print("metrics:", values)

    out = frame.copy()
    out["keras_class"], out["onnx_class"] = keras_class, onnx_class
    for index, name in enumerate(class_names):
        out[f"keras_p_{name}"] = keras_prob[:, index]
        out[f"onnx_p_{name}"] = onnx_prob[:, index]
    out.to_csv(predictions.path, index=False, float_format="%.7g")
    onnx_model.metadata.update({"format": "onnx", "opset": opset, "inputs": [i.name for i in session.get_inputs()], "outputs": names,
                                "class_names": class_names, "onnx_accuracy": values["onnx_accuracy"]})
    if agreement < 1.0 or max_diff > 1e-4:
        raise RuntimeError(f"the ONNX model does not reproduce the Keras model: agreement {agreement}, max |diff| {max_diff}")

    if mlflow_tracking_uri and mlflow_run_id:
        import mlflow

        mlflow.set_tracking_uri(mlflow_tracking_uri)
        with mlflow.start_run(run_id=mlflow_run_id):
            mlflow.log_metrics(values)
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.onnx")
                shutil.copyfile(onnx_model.path, path)
                mlflow.log_artifact(path, artifact_path="onnx")

"""Train a breast-cancer classifier with lockgate tracking and register it, ready for `lockgate validate`.

    python examples/breast_cancer/train.py                      # logistic regression on 30 features
    python examples/breast_cancer/train.py --model two-features # a deliberately worse model
    lockgate validate "$(cat model-ref.txt)" --policy examples/breast_cancer/lockgate.yaml

``--step data|train|register`` runs one step at a time, each writing a small file the next reads;
``pipeline.yaml`` chains them (``lockgate pipeline run examples/breast_cancer/pipeline.yaml``).

The data is scikit-learn's bundled copy (no download). It is split once, with a fixed seed, into
``train.csv`` and ``holdout.csv``; each is snapshotted as a dataset version (unchanged data gives the
same version again), the run links the training version, and the holdout is what the gate scores.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

MODEL_NAME = "breast-cancer-classifier"
TRAIN_DATASET = "breast-cancer-train"
HOLDOUT_DATASET = "breast-cancer-holdout"
TARGET = "target"
TWO_FEATURES = ["mean radius", "mean texture"]


def prepare_data(folder: Path, *, seed: int = 42) -> tuple[Path, Path]:
    """Write the fixed train/holdout split as CSV files under ``folder``."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    frame = load_breast_cancer(as_frame=True).frame
    train, holdout = train_test_split(frame, test_size=0.3, random_state=seed, stratify=frame[TARGET])
    folder.mkdir(parents=True, exist_ok=True)
    train_path, holdout_path = folder / "train.csv", folder / "holdout.csv"
    train.to_csv(train_path, index=False)
    holdout.to_csv(holdout_path, index=False)
    return train_path, holdout_path


def snapshot_data(folder: Path, *, seed: int = 42, prefix: str = "") -> tuple[str, str]:
    """Split, then snapshot both files; returns the (train, holdout) dataset refs, NAME@VERSION."""
    from lockgate.tracking.connection import connect
    from lockgate.tracking.datasets import snapshot

    train_path, holdout_path = prepare_data(folder, seed=seed)
    conn = connect()
    train = snapshot(conn, train_path, prefix + TRAIN_DATASET, description="breast-cancer training split")
    holdout = snapshot(conn, holdout_path, prefix + HOLDOUT_DATASET, description="breast-cancer holdout")
    return train.ref, holdout.ref


def build_model(kind: str, seed: int) -> Any:
    """``logistic`` (all features), ``two-features`` (worse on purpose) or ``boosting``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))
    if kind == "two-features":
        # Reads the same 30 columns (same signature), but looks at only two of them.
        pick = ColumnTransformer([("two", "passthrough", TWO_FEATURES)])
        return make_pipeline(pick, StandardScaler(), LogisticRegression(max_iter=2000))
    if kind == "boosting":
        return GradientBoostingClassifier(n_estimators=60, max_depth=2, random_state=seed)
    raise SystemExit(f"unknown --model {kind!r}; use logistic, two-features or boosting")


def train_and_register(
    train_ref: str,
    train_path: Path,
    *,
    kind: str = "logistic",
    name: str = MODEL_NAME,
    seed: int = 42,
    alias: str | None = None,
    rename: dict[str, str] | None = None,
) -> str:
    """Train inside ``lockgate.track`` (commit, environment, dataset digest), log, register; return NAME@V.

    ``rename`` renames input columns before training, which changes the model's signature (for the
    gate's own tests and the docs).
    """
    import pandas as pd
    from mlflow.models import infer_signature

    import lockgate
    from lockgate.tracking.connection import connect
    from lockgate.tracking.registry import register

    frame = pd.read_csv(train_path).rename(columns=rename or {})
    x, y = frame.drop(columns=[TARGET]), frame[TARGET]
    params = {"model": kind, "seed": seed}
    with lockgate.track(run_name=kind, params=params, datasets=[train_ref]) as run:
        model = build_model(kind, seed).fit(x, y)
        run.log_metric("train_accuracy", float(model.score(x, y)))
        run.log_model(model, signature=infer_signature(x, model.predict(x)))
    version = register(connect(), run.run_id, name, alias=alias, description=f"example: {kind}")
    return version.ref


def train_run(train_ref: str, train_path: Path, *, kind: str = "logistic", seed: int = 42) -> str:
    """Train and log the model inside ``lockgate.track``; return the run id (not registered yet)."""
    import pandas as pd
    from mlflow.models import infer_signature

    import lockgate

    frame = pd.read_csv(train_path)
    x, y = frame.drop(columns=[TARGET]), frame[TARGET]
    with lockgate.track(run_name=kind, params={"model": kind, "seed": seed}, datasets=[train_ref]) as run:
        model = build_model(kind, seed).fit(x, y)
        run.log_metric("train_accuracy", float(model.score(x, y)))
        run.log_model(model, signature=infer_signature(x, model.predict(x)))
    return run.run_id


def run_step(args: argparse.Namespace) -> None:
    """One pipeline step: data (split + snapshot), train (a tracked run) or register (a model version)."""
    import json

    from lockgate.tracking.connection import connect
    from lockgate.tracking.registry import register

    if args.step == "data":
        train_ref, holdout_ref = snapshot_data(args.data_dir, seed=args.seed)
        args.datasets_file.write_text(json.dumps({"train": train_ref, "holdout": holdout_ref}) + "\n")
        print(f"datasets: {train_ref} (train), {holdout_ref} (holdout)")
    elif args.step == "train":
        refs = json.loads(args.datasets_file.read_text())
        run_id = train_run(refs["train"], args.data_dir / "train.csv", kind=args.model, seed=args.seed)
        args.run_file.write_text(run_id + "\n")
        print(f"trained {args.model}: run {run_id}")
    else:
        run_id = args.run_file.read_text().strip()
        version = register(
            connect(), run_id, args.name, alias=args.alias, description=f"example: {args.model}"
        )
        args.output_ref.write_text(version.ref + "\n")
        print(f"registered {version.ref}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="logistic", choices=["logistic", "two-features", "boosting"])
    parser.add_argument("--name", default=MODEL_NAME, help="registered model name")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="where the CSV split goes")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--alias", default=None, help="also point this alias (e.g. champion) at it")
    parser.add_argument("--output-ref", type=Path, default=Path("model-ref.txt"), help="write NAME@V here")
    parser.add_argument("--step", choices=["all", "data", "train", "register"], default="all")
    parser.add_argument("--datasets-file", type=Path, default=Path("datasets.json"), help="data → train")
    parser.add_argument("--run-file", type=Path, default=Path("run-id.txt"), help="train → register")
    args = parser.parse_args()
    if args.step != "all":
        for path in (args.output_ref, args.datasets_file, args.run_file):
            path.parent.mkdir(parents=True, exist_ok=True)
        run_step(args)
        return
    train_ref, holdout_ref = snapshot_data(args.data_dir, seed=args.seed)
    ref = train_and_register(
        train_ref,
        args.data_dir / "train.csv",
        kind=args.model,
        name=args.name,
        seed=args.seed,
        alias=args.alias,
    )
    args.output_ref.write_text(ref + "\n")
    print(f"datasets: {train_ref} (train), {holdout_ref} (holdout)")
    print(f"registered {ref}; next: lockgate validate {ref} --policy examples/breast_cancer/lockgate.yaml")


if __name__ == "__main__":
    main()

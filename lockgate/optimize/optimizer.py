"""The optimize shell: load a registered version (checksum verified), make a candidate with one method,
compare it with its parent on held-out inputs, measure both, log the trade-off to MLflow and register
the candidate as a new version with lineage — only when it stayed within tolerance.

Nothing here decides how to optimize; it calls the export, quantize, prune and distill modules and the
pure trade-off record.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lockgate.errors import UserError
from lockgate.optimize.candidate import Candidate, Framing, load_candidate
from lockgate.optimize.cpu import CpuInfo, cpu_info
from lockgate.optimize.distill import distill_encoder, distill_tabular
from lockgate.optimize.encoder import ENCODER_FILE, GRAPH_FILE, OnnxSentenceEncoder
from lockgate.optimize.experiment import optimize_experiment
from lockgate.optimize.export import sklearn_to_onnx, torch_to_onnx
from lockgate.optimize.holdout import describe_split, held_out_split
from lockgate.optimize.inputs import Inputs, data_file, input_columns, read_rows
from lockgate.optimize.measure import MeasureConfig, folder_bytes, measure_latency
from lockgate.optimize.methods import MethodSpec, ModelKind, check_applicable, make_spec, spec_for
from lockgate.optimize.prune import prune_encoder_ffn, prune_mlp_neurons, prune_unstructured, sparsity
from lockgate.optimize.quantize import quantize_dynamic_int8, quantize_static_int8, sensitive_nodes
from lockgate.optimize.sentences import generate_sentences
from lockgate.optimize.tradeoff import TradeOff, cosine_rows, max_abs_diff, pareto_optimal
from lockgate.tracking.connection import Connection
from lockgate.tracking.registry import RegisteredVersion, get_model_version, register

__all__ = ["Candidate", "OptimizationResult", "Optimizer", "open_optimizer"]


# -- results ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OptimizationResult:
    """One candidate's outcome: its record, its parent's, the MLflow run and the registered version."""

    spec: MethodSpec
    parent: TradeOff
    candidate: TradeOff
    run_id: str | None
    version: RegisteredVersion | None

    @property
    def is_registered(self) -> bool:
        return self.version is not None


@dataclass
class Optimizer:
    """A loaded parent version and its judging data; :meth:`run` makes and records one candidate."""

    conn: Connection
    version: RegisteredVersion
    parent: Candidate
    signature: Any
    inputs: Inputs
    measure: MeasureConfig
    workdir: Path
    seed: int = 0
    cpu: CpuInfo = field(default_factory=cpu_info)
    parent_folder: Path | None = None  # the registered model folder as downloaded: the parent's size
    _parent_record: TradeOff | None = None
    _parent_outputs: npt.NDArray[Any] | None = None

    @property
    def kind(self) -> ModelKind:
        return self.parent.kind

    # -- measuring ----------------------------------------------------------------------------
    def _batches(self) -> tuple[Any, Any]:
        held = self.inputs.held_out
        if self.parent.is_text:
            batch32 = [held[i % len(held)] for i in range(32)]
            return [held[0]], batch32
        rows = np.asarray(held)
        return rows[:1], rows[np.arange(32) % len(rows)]

    def _quality(self, outputs: npt.NDArray[Any]) -> tuple[str, float, dict[str, float]]:
        if self.parent.is_text:
            reference = self.parent_outputs()
            cosines = cosine_rows(reference, outputs)
            return "cosine_mean", float(cosines.mean()), {"cosine_min": float(cosines.min())}
        labels = self.inputs.labels
        classes = getattr(self._parent_object_for_classes(), "classes_", None)
        picked = np.argmax(outputs, axis=1) if outputs.ndim == 2 and outputs.shape[1] > 1 else None
        if picked is None:
            picked = (np.asarray(outputs).reshape(-1) >= 0.5).astype(int)
        predicted = np.asarray(classes)[picked] if classes is not None else picked
        if labels is None:
            parent_outputs = self.parent_outputs()
            parent_picked = np.argmax(parent_outputs, axis=1) if parent_outputs.ndim == 2 else parent_outputs
            reference = np.asarray(classes)[parent_picked] if classes is not None else parent_picked
            return "agreement", float(np.mean(predicted == reference)), {}
        return "accuracy", float(np.mean(predicted == labels)), {}

    def _parent_object_for_classes(self) -> Any:
        return self.parent.obj if self.parent.kind == "sklearn" else None

    def parent_outputs(self) -> npt.NDArray[Any]:
        if self._parent_outputs is None:
            self._parent_outputs = self._predict_all(self.parent)
        return self._parent_outputs

    def _predict_all(self, model: Candidate) -> npt.NDArray[Any]:
        held = self.inputs.held_out
        chunks = [model.predict(held[i : i + 32]) for i in range(0, len(held), 32)]
        return np.concatenate(chunks, axis=0)

    def _record(self, model: Candidate, spec: MethodSpec | None, outputs: npt.NDArray[Any]) -> TradeOff:
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(model.threads)
        try:
            batch1, batch32 = self._batches()
            cfg = self.measure
            b1 = measure_latency(model.predict, batch1, cfg.calls_b1, warmup=cfg.warmup)
            b32 = measure_latency(model.predict, batch32, cfg.calls_b32, warmup=cfg.warmup)
        finally:
            torch.set_num_threads(previous)
        metric, quality, extra = self._quality(outputs)
        if spec is None:
            size = (
                folder_bytes(self.parent_folder) if self.parent_folder else model.size_bytes(self.signature)
            )
            return TradeOff(
                "parent",
                "parent",
                {},
                size,
                b1,
                b32,
                metric,
                quality,
                extra={**extra, **model.extra},
                notes=model.notes,
                cpu=self.cpu.describe(),
            )
        parent = self.parent_record()
        diff = max_abs_diff(self.parent_outputs(), outputs)
        loss = diff if spec.method == "onnx" else parent.quality - quality
        return TradeOff(
            spec.label,
            spec.method,
            dict(spec.params),
            model.size_bytes(self.signature),
            b1,
            b32,
            metric,
            quality,
            max_abs_diff=diff,
            is_verified=bool(loss <= spec.tolerance),
            tolerance=spec.tolerance,
            extra={**extra, **model.extra},
            notes=model.notes,
            cpu=self.cpu.describe(),
        )

    def parent_record(self) -> TradeOff:
        """The parent's own trade-off record (measured once)."""
        if self._parent_record is None:
            self._parent_record = self._record(self.parent, None, self.parent_outputs())
        return self._parent_record

    # -- making candidates --------------------------------------------------------------------
    def make(self, spec: MethodSpec) -> Candidate:
        """Build the candidate ``spec`` describes (no measuring, no logging)."""
        check_applicable(spec, self.kind)
        work = Path(tempfile.mkdtemp(prefix=f"{spec.method}-", dir=self.workdir))
        makers: dict[str, Callable[[MethodSpec, Path], Candidate]] = {
            "onnx": self._onnx,
            "quantize": self._quantize,
            "prune": self._prune,
            "distill": self._distill,
        }
        return makers[spec.method](spec, work)

    def _onnx(self, spec: MethodSpec, work: Path) -> Candidate:
        threads = self.parent.threads
        exporter = spec.params.get("exporter", "dynamo")
        if self.kind == "sklearn":
            path = work / GRAPH_FILE
            path.write_bytes(sklearn_to_onnx(self.parent.obj, np.asarray(self.inputs.train)[:1]))
            return Candidate("onnx", path, threads)
        if self.kind == "torch":
            width = np.asarray(self.inputs.train).shape[1]
            import torch

            example = (torch.zeros((2, width), dtype=torch.float32),)
            path = torch_to_onnx(
                self.parent.obj,
                example,
                work / GRAPH_FILE,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}},
                exporter=exporter,
            )
            return Candidate("onnx", path, threads)
        from lockgate.optimize.encoder import export_encoder

        return Candidate(
            "onnx-encoder", export_encoder(self.parent.obj, work / "encoder", exporter=exporter), threads
        )

    def _quantize(self, spec: MethodSpec, work: Path) -> Candidate:
        if spec.params.get("mode") == "bf16":
            return self._bf16()
        base = self.parent if self.kind in ("onnx", "onnx-encoder") else self._onnx(make_spec("onnx"), work)
        is_text = base.kind == "onnx-encoder"
        src = Path(base.obj) / GRAPH_FILE if is_text else Path(base.obj)
        dst = work / "int8" / GRAPH_FILE
        exclude = sensitive_nodes(src) if spec.params.get("exclude_sensitive") else []
        is_per_channel = bool(spec.params.get("per_channel", True))
        if spec.params.get("mode") == "static":
            quantize_static_int8(
                src,
                dst,
                self._calibration(base),
                is_per_channel=is_per_channel,
                exclude=exclude,
                kind=self.kind,
            )
        else:
            quantize_dynamic_int8(src, dst, is_per_channel=is_per_channel, exclude=exclude, kind=self.kind)
        notes = (f"kept in float: {', '.join(exclude)}",) if exclude else ()
        if not is_text:
            return Candidate("onnx", dst, base.threads, notes=notes)
        folder = work / "encoder-int8"
        shutil.copytree(Path(base.obj), folder, ignore=shutil.ignore_patterns(GRAPH_FILE))
        shutil.move(str(dst), folder / GRAPH_FILE)
        config = json.loads((folder / ENCODER_FILE).read_text())
        (folder / ENCODER_FILE).write_text(json.dumps({**config, "graph": GRAPH_FILE}, indent=2) + "\n")
        return Candidate("onnx-encoder", folder, base.threads, notes=notes)

    def _bf16(self) -> Candidate:
        """The encoder with bfloat16 weights, run by PyTorch: on a CPU with AMX or AVX-512 BF16 its
        matrix products run in hardware (embeddings come back as float32)."""
        import copy

        import torch

        model = copy.deepcopy(self.parent.obj).to(torch.bfloat16)
        hardware = "AMX" if "amx_bf16" in self.cpu.flags else "AVX-512 BF16"
        if not self.cpu.has_bf16:
            hardware = "no bf16 instructions: emulated"
        return Candidate("encoder", model, self.parent.threads, notes=(f"bfloat16 in PyTorch ({hardware})",))

    def _calibration(self, base: Candidate) -> list[dict[str, npt.NDArray[Any]]]:
        train = self.inputs.train
        if base.kind == "onnx-encoder":
            encoder = OnnxSentenceEncoder(Path(base.obj)).load()
            return [
                {"input_ids": encoder.token_ids(train[i : i + 16])}
                for i in range(0, min(len(train), 128), 16)
            ]
        rows = np.asarray(train, dtype=np.float32)
        session = base._ort()
        name = session.get_inputs()[0].name
        return [{name: rows[i : i + 32]} for i in range(0, min(len(rows), 512), 32)]

    def _prune(self, spec: MethodSpec, work: Path) -> Candidate:
        amount = float(spec.params["amount"])
        threads = self.parent.threads
        if spec.params["kind"] == "unstructured":
            pruned = prune_unstructured(self.parent.obj, amount)
            note = f"sparsity {sparsity(pruned):.0%}; dense CPU kernels gain no speed from zeros"
            return Candidate(self.kind, pruned, threads, notes=(note,), extra={"sparsity": sparsity(pruned)})
        if self.kind == "torch":
            pruned = prune_mlp_neurons(self.parent.obj, amount)
            widths = [m.out_features for m in pruned if hasattr(m, "out_features")][:-1]
            return Candidate("torch", pruned, threads, notes=(f"hidden widths now {widths}",))
        pruned = prune_encoder_ffn(self.parent.obj, amount)
        width = pruned[0].auto_model.config.intermediate_size
        return Candidate("encoder", pruned, threads, notes=(f"feed-forward width now {width}",))

    def _distill(self, spec: MethodSpec, work: Path) -> Candidate:
        threads = self.parent.threads
        if self.kind == "sklearn":
            teacher = self.parent.obj
            student = distill_tabular(
                Framing(teacher) if hasattr(teacher, "feature_names_in_") else teacher,
                np.asarray(self.inputs.train),
                student=spec.params["student"],
                seed=self.seed,
            )
            return Candidate("sklearn", student, threads, notes=(f"student {type(student).__name__}",))
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            student = distill_encoder(
                self.parent.obj,
                self.inputs.train,
                layers=int(spec.params["layers"]),
                steps=int(spec.params["steps"]),
                seed=self.seed,
            )
        finally:
            torch.set_num_threads(previous)
        return Candidate("encoder", student, threads, notes=(f"{spec.params['layers']} transformer layers",))

    # -- the whole step -----------------------------------------------------------------------
    def run(
        self,
        spec: MethodSpec,
        *,
        name: str | None = None,
        alias: str | None = None,
        is_registering: bool = True,
    ) -> OptimizationResult:
        """Make, verify, measure, log and (when within tolerance) register one candidate."""
        spec = spec_for(spec, self.kind)
        candidate, record = self._evaluate(spec)
        if not is_registering:
            return OptimizationResult(spec, self.parent_record(), record, None, None)
        return self._log(spec, candidate, record, name=name, alias=alias, is_registering=record.is_verified)

    def sweep(
        self,
        specs: Sequence[MethodSpec],
        *,
        name: str | None = None,
        is_registering: bool = True,
        on_skip: Callable[[MethodSpec, UserError], None] | None = None,
        on_measured: Callable[[MethodSpec], None] | None = None,
    ) -> list[OptimizationResult]:
        """Make and measure every candidate on this machine, then log each and register the verified
        ones on the Pareto front (quality, latency, size) with the parent: a candidate that another
        beats on every axis here is logged, not registered. A spec that does not apply is skipped."""
        measured: list[tuple[MethodSpec, Candidate, TradeOff]] = []
        for given in specs:
            spec = spec_for(given, self.kind)
            try:
                candidate, record = self._evaluate(spec)
            except UserError as exc:
                if on_skip is None:
                    raise
                on_skip(spec, exc)
                continue
            measured.append((spec, candidate, record))
            if on_measured is not None:
                on_measured(spec)
        parent = self.parent_record()
        front = pareto_optimal([parent, *(record for _, _, record in measured)])[1:]
        if not is_registering:
            return [OptimizationResult(spec, parent, record, None, None) for spec, _, record in measured]
        return [
            self._log(
                spec, candidate, record, name=name, alias=None, is_registering=is_optimal, front=front_flag
            )
            for (spec, candidate, record), is_optimal, front_flag in zip(measured, front, front, strict=True)
        ]

    def _evaluate(self, spec: MethodSpec) -> tuple[Candidate, TradeOff]:
        candidate = self.make(spec)
        outputs = self._predict_all(candidate)
        return candidate, self._record(candidate, spec, outputs)

    def _log(
        self,
        spec: MethodSpec,
        candidate: Candidate,
        record: TradeOff,
        *,
        name: str | None,
        alias: str | None,
        is_registering: bool,
        front: bool | None = None,
    ) -> OptimizationResult:
        """One MLflow run with the trade-off (and the model when it is registered)."""
        from lockgate.tracking.tracker import track

        parent = self.parent_record()
        params = {f"optimize.{k}": v for k, v in spec.params.items()}
        tags = {
            "lockgate.optimize.parent": self.version.ref,
            "lockgate.optimize.method": spec.method,
            "lockgate.optimize.verified": str(record.is_verified).lower(),
            # the numbers hold for this CPU only
            "lockgate.optimize.cpu": self.cpu.describe(),
            "lockgate.optimize.cpu_flags": " ".join(self.cpu.flags),
            "lockgate.optimize.judged_on": self.inputs.source,
        }
        if front is not None:
            tags["lockgate.optimize.pareto"] = str(front).lower()
        datasets = [
            str(d["path"]) for d in self.version.datasets if d.get("path") and Path(str(d["path"])).exists()
        ]
        with track(
            optimize_experiment(self.conn, self.version),
            run_name=f"optimize {self.version.ref} {spec.label}",
            params={"optimize.method": spec.method, "optimize.tolerance": spec.tolerance, **params},
            tags=tags,
            datasets=datasets[:1],
        ) as run:
            run.log_metrics(record.metrics())
            run.log_metrics({f"parent_{k}": v for k, v in parent.metrics().items()})
            run.log_dict(
                {"parent": parent.to_dict(), "candidate": record.to_dict(), "cpu": self.cpu.to_dict()},
                "optimize/tradeoff.json",
            )
            if is_registering:
                signature = self.signature
                if candidate.kind == "onnx-encoder":
                    signature = None
                candidate.log(signature)
        version = None
        if is_registering:
            version = register(
                self.conn,
                run.run_id,
                name or self.version.name,
                parent=self.version.ref,
                method=spec.method,
                method_params={**spec.params, "tolerance": spec.tolerance},
                description=f"{spec.label} of {self.version.ref}",
                alias=alias,
            )
        return OptimizationResult(spec, parent, record, run.run_id, version)


def open_optimizer(
    conn: Connection,
    ref: str,
    *,
    data: Path | None = None,
    target: str = "target",
    measure: MeasureConfig | None = None,
    threads: int = 2,
    sentences: int = 256,
    train_sentences: int = 1024,
    seed: int = 0,
    workdir: Path | None = None,
) -> Optimizer:
    """Download and verify ``ref`` (``NAME@VERSION``, ``NAME@ALIAS``), load it and its judging data.

    Tabular models are judged on ``data`` (or the data file their run recorded): a fixed 30% held out
    (:mod:`lockgate.optimize.holdout`), 70% for distillation and calibration. Sentence encoders are
    judged on ``sentences`` generated sentences and distilled on ``train_sentences`` others.
    """
    from lockgate.serving.source import resolve_source

    version = get_model_version(conn, ref)
    work = workdir or Path(tempfile.mkdtemp(prefix="lockgate-optimize-"))
    work.mkdir(parents=True, exist_ok=True)
    source = resolve_source(f"models:/{version.name}/{version.version}", download_dir=work / "parent")
    parent, signature = load_candidate(source.path, threads)
    if parent.is_text:
        inputs = Inputs(
            generate_sentences(train_sentences, seed=seed + 1),
            generate_sentences(sentences, seed=seed + 2),
            source=f"the same {sentences} generated sentences (seed {seed + 2}) for the parent and "
            "every candidate",
        )
    else:
        path = data_file(version, data)
        rows, labels = read_rows(path, target, input_columns(signature))
        train, held = held_out_split(len(rows))
        split = describe_split(path.name, len(held), len(rows), is_run_data=data is None)
        inputs = Inputs(rows[train], rows[held], labels[held] if labels is not None else None, split)
    return Optimizer(
        conn,
        version,
        parent,
        signature,
        inputs,
        measure or MeasureConfig(),
        work,
        seed,
        parent_folder=source.path,
    )

"""Person registration from a photo alone with full-size random weights: ms per phase.

    PYTHONPATH=src:. python bench/preprocess_bench.py [--device cuda] [--repeats 10]
        [--densepose-reference DIR] [--schp DIR] [--out results.json]

Builds IDM-VTON's ckpt/ folder in a temporary directory: OpenPose `body_pose_model.pth` from the
reference recipe (random, full size), the two SCHP ONNX files from bench/schp_onnx.py (ResNet-101
CE2P, random; or `--schp DIR` with them already written) and DensePose's model-zoo pickle, either
the reference weights (`--densepose-reference`: a copy of shared/reference/densepose, whose fitted
detector finds its case's person: realistic instance counts) or random ones. Then registers the
reference person photo (or the demo person) into a local store `--repeats` times after warm-up
and reports the median of each phase (PHASES).

On CUDA it also compares DensePose precisions on the photo against fp32 with TF32 off (the
reference setting): fp32 with TF32 (PyTorch's and the engine's default), bf16, fp16; time and
the share of equal part labels in the painted image.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.harness import sync
from bench.schp_onnx import MODELS, export
from vton.preprocess.body.analyze import (
    WEIGHT_FILES,
    PersonAnalysis,
    PersonAnalyzer,
    model_image,
)
from vton.preprocess.body.densepose import DensePose, label_map, render_pose
from vton.preprocess.body.densepose_weights import (
    load_densepose_net,
    random_densepose_state,
    write_model_zoo_pickle,
)
from vton.preprocess.body.openpose_net import random_body_pose_state, save_body_pose_checkpoint
from vton.preprocess.body.standins import demo_person
from vton.preprocess.fit import fit_photo
from vton.preprocess.person import binarize, gray_out, register_person
from vton.store import Category, LocalStore
from vton.store.codecs import encode_pngs

PHASES = ("openpose", "parsing", "densepose", "analysis", "masks", "encode", "store", "total")
"""Each model's own time; the analysis' wall time (on a GPU the models run at once); the masks of
the three categories and the pose image; PNG encoding; store writes and the rest; the whole
registration."""


def densepose_reference_state(folder: Path) -> dict[str, torch.Tensor]:
    """The reference weights (fitted detector) from the folder's make_weights.py recipe."""
    spec = importlib.util.spec_from_file_location("make_weights", folder / "make_weights.py")
    assert spec is not None and spec.loader is not None
    make_weights = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_weights)
    recipe = json.loads((folder / "weights" / "recipe.json").read_text())
    from safetensors.torch import load_file

    return make_weights.build(recipe, load_file(folder / "weights" / "overrides.safetensors"))


def write_weights(root: Path, schp: Path | None, densepose_reference: Path | None) -> None:
    paths = {name: root / relative for name, relative in WEIGHT_FILES.items()}
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    save_body_pose_checkpoint(paths["openpose"], random_body_pose_state())
    for name, (classes, size) in MODELS.items():
        target = paths["parsing_atr" if "atr" in name else "parsing_lip"]
        if schp is not None:
            target.symlink_to((schp / name).resolve())
        else:
            export(target, classes, size, seed=classes)
    state = (
        densepose_reference_state(densepose_reference)
        if densepose_reference is not None
        else random_densepose_state(1, seed=0)
    )
    write_model_zoo_pickle(paths["densepose"], state)


def time_registrations(
    analyzer: PersonAnalyzer, photo: Image.Image, store: LocalStore, repeats: int, device: str
) -> dict[str, float]:
    """Median ms per phase over `repeats` registrations (after two warm-up ones). The masks and
    the encoding are timed again on the registration's own analysis: register_person does the
    same work, and the store's share is what remains of its total."""
    samples: dict[str, list[float]] = {phase: [] for phase in PHASES}
    analyze = analyzer.analyze
    seen: list[PersonAnalysis] = []

    def recording(image: Image.Image, **kwargs: bool) -> PersonAnalysis:
        seen.append(analyze(image, **kwargs))
        return seen[-1]

    analyzer.analyze = recording  # type: ignore[method-assign]
    for i in range(repeats + 2):
        sync()
        started = time.perf_counter()
        register_person(store, "bench", photo, analyzer=analyzer)
        sync()
        total = (time.perf_counter() - started) * 1000.0
        analysis = seen[-1]
        started = time.perf_counter()
        working = analysis.working_masks([c.value for c in Category])
        masks = {c: binarize(mask) for c, mask in working.items()}
        pose = analysis.pose()
        masks_ms = (time.perf_counter() - started) * 1000.0
        human = fit_photo(photo)[0]
        images = {
            f"{c}/{n}": im
            for c, m in masks.items()
            for n, im in (("mask", m), ("gray", gray_out(human, m)))
        }
        started = time.perf_counter()
        encode_pngs({"human": human, "pose": pose, **images}, "v")
        encode_ms = (time.perf_counter() - started) * 1000.0
        if i < 2:
            continue
        measured = {**analysis.timings_ms, "masks": masks_ms, "encode": encode_ms, "total": total}
        measured["store"] = total - measured["analysis"] - masks_ms - encode_ms
        for phase in PHASES:
            samples[phase].append(measured[phase])
    analyzer.analyze = analyze  # type: ignore[method-assign]
    return {phase: statistics.median(values) for phase, values in samples.items()}


def set_tf32(enabled: bool) -> None:
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled


def compare_densepose(
    path: Path,
    cache: Path,
    image: Image.Image,
    device: str,
    repeats: int,
    reference_segm: Path | None,
) -> list[dict[str, object]]:
    """DensePose alone per precision: median ms, labels equal to fp32 without TF32, and whether
    the original painting equals the reference's dp_segm image (when there is one)."""
    variants = [
        ("fp32, TF32 off (reference)", torch.float32, False),
        ("fp32, TF32 on", torch.float32, True),
        ("bf16", torch.bfloat16, True),
        ("fp16", torch.float16, True),
    ]
    rows: list[dict[str, object]] = []
    reference = None
    for name, dtype, tf32 in variants:
        set_tf32(tf32)
        runner = DensePose(load_densepose_net(path, cache, device), device, dtype)
        for _ in range(2):
            found = runner(image)
        times = []
        for _ in range(repeats):
            sync()
            started = time.perf_counter()
            found = runner(image)
            sync()
            times.append((time.perf_counter() - started) * 1000.0)
        labels = label_map(found)
        reference = labels if reference is None else reference
        segm_equal = None
        if reference_segm is not None and reference_segm.is_file():
            painted = np.asarray(render_pose(found, image, original=True))
            segm_equal = bool(np.array_equal(painted, np.asarray(Image.open(reference_segm))))
        rows.append(
            {
                "variant": name,
                "ms": statistics.median(times),
                "instances": len(found.scores),
                "labels_equal": float((labels == reference).mean()),
                "reference_dp_segm_equal": segm_equal,
            }
        )
    set_tf32(True)
    return rows


def markdown(device_name: str, phases: dict[str, float], dp_rows: list, repeats: int) -> str:
    lines = [
        f"Device: {device_name}; median of {repeats} registrations after 2 warm-up ones, ms.",
        "",
        "| " + " | ".join(PHASES) + " |",
        "| " + " | ".join("---" for _ in PHASES) + " |",
        "| " + " | ".join(f"{phases[p]:.1f}" for p in PHASES) + " |",
    ]
    if dp_rows:
        lines += [
            "",
            "| DensePose alone | ms | instances | labels equal to fp32 without TF32 |"
            " original painting = reference dp_segm |",
            "| --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {r['variant']} | {r['ms']:.1f} | {r['instances']} | {r['labels_equal']:.4%} "
            f"| {r['reference_dp_segm_equal']} |"
            for r in dp_rows
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--densepose-reference", type=Path)
    parser.add_argument("--schp", type=Path, help="folder with parsing_{atr,lip}.onnx")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ckpt"
        started = time.perf_counter()
        write_weights(root, args.schp, args.densepose_reference)
        print(f"weights written in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        started = time.perf_counter()
        analyzer = PersonAnalyzer.load(root, args.device, Path(tmp) / "cache")
        print(f"models loaded in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        reference_photo = (args.densepose_reference or Path("-")) / "case1/person_768x1024.png"
        photo = Image.open(reference_photo) if reference_photo.is_file() else demo_person()
        store = LocalStore(Path(tmp) / "store")
        phases = time_registrations(analyzer, photo, store, args.repeats, args.device)
        dp_rows = []
        if args.device.startswith("cuda"):
            dp_rows = compare_densepose(
                root / WEIGHT_FILES["densepose"],
                Path(tmp) / "cache",
                model_image(photo.convert("RGB")),
                args.device,
                args.repeats,
                (args.densepose_reference or Path("-")) / "case1/dp_segm_rgb_384x512.png",
            )
    device_name = (
        torch.cuda.get_device_name(args.device)
        if args.device.startswith("cuda")
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    table = markdown(device_name, phases, dp_rows, args.repeats)
    print(table)
    if args.out:
        record = {"device": device_name, "phases_ms": phases, "densepose": dp_rows}
        args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()

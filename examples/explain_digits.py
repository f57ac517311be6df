"""The pictures of docs/explain.md: where the CNN and the MLP look on digits, with the sanity checks.

    python examples/explain_digits.py [OUT_FOLDER]      # default docs/

Trains both networks on the digits for 5 epochs (about a minute on two cores), then writes
explain_gradcam.png, explain_saliency_cnn.png, explain_saliency_mlp.png, explain_features.png and
explain_filters.png, and prints each map's sanity checks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cnnlab
from cnnlab import explain


def main(out: Path) -> None:
    (x, y), (x_test, y_test) = cnnlab.load_data("digits")
    images, labels = x_test[:8], y_test[:8]
    models = {}
    for name in ("cnn", "mlp"):
        models[name] = cnnlab.Model(name, seed=0)
        models[name].fit(x, y, epochs=5, verbose=0)
        print(f"{name}: test accuracy {models[name].evaluate(x_test, y_test)[1]:.3f}")
    shown = [("gradcam", "cnn", "explain_gradcam.png"), ("gradient", "cnn", "explain_saliency_cnn.png"),
             ("gradient", "mlp", "explain_saliency_mlp.png")]
    for method, name, filename in shown:
        picture(models[name], images, labels, method, out / filename, name)
    first = explain.feature_maps(models["cnn"], images[:1], "conv2d")[0]  # (8, 8, 32)
    explain.feature_grid(first, title="cnn, layer conv2d: feature maps of the first test digit", limit=16)\
        .savefig(out / "explain_features.png", dpi=80)
    kernels = explain.filters(models["cnn"])[:, :, 0, :]  # (3, 3, 32): each filter's weights on the one channel
    explain.feature_grid(kernels, title="cnn, layer conv2d: the first 16 filters", limit=16, signed=True)\
        .savefig(out / "explain_filters.png", dpi=80)


def picture(model, images, labels, method: str, path: Path, name: str) -> None:
    maps = explain.grad_cam(model, images) if method == "gradcam" else explain.saliency(model, images)
    predicted = model.predict(images).argmax(axis=1)
    randomised = explain.randomisation_test(model, images, method)
    deletion = explain.deletion_score(model, images, method, maps=maps)
    titles = [f"{label} -> {guess}" for label, guess in zip(labels, predicted)]
    caption = f"{name}, {method}: {randomised.verdict}\n{deletion.verdict}"
    explain.overlay(images, maps, titles=titles, caption=caption, side_by_side=True, columns=8)\
        .savefig(path, dpi=80)
    steps = ", ".join(f"{step.layer} {step.spearman:.2f}" for step in randomised.steps if step.spearman is not None)
    print(f"{path.name}: {randomised.verdict}; cascade: {steps}\n  {deletion.verdict}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "docs")

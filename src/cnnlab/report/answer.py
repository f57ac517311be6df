"""The report's opening: the answer in a sentence per comparison, warnings, the table, the curves."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cnnlab.report import figures
from cnnlab.report.document import Document, p_text, percent, percent_stat, points, seeds_text

if TYPE_CHECKING:
    from cnnlab.experiment.findings import Findings
    from cnnlab.experiment.results import Comparison, Contrast, ModelResult, RunHealth


def answer(document: Document, comparison: Comparison, findings: Findings) -> None:
    """A headline per contrast, what it cannot tell with one seed, and every troubled run, prominently."""
    means = {model.spec: model.test_accuracy.mean for model in comparison.models}
    for found in findings.contrasts:
        template, values = headline(found, means)
        document.prose(template, style="headline", **values)
    if comparison.seeds == 1:
        document.prose("One seed per model: how far the accuracy moves from one seed to the next is not "
                       "measured, so a difference of a few points may be noise. Run with `--seeds 3` or more "
                       "to measure it.", style="note")
    for health in findings.troubled:
        template, values = warning(health)
        document.prose(template, style="warning", **values)


def headline(found: Contrast, means: dict[str, float]) -> tuple[str, dict]:
    """The sentence that answers 'which is better, by how much, and is it noise?' (a template and its values)."""
    ahead, behind = (found.second, found.first) if found.difference >= 0 else (found.first, found.second)
    values = {"ahead": ahead, "behind": behind, "gap": points(abs(found.difference)),
              "score": percent(means[ahead]), "other": percent(means[behind])}
    if values["gap"] == "0.0":
        return "**{ahead} and {behind} score the same test accuracy** ({score})" + _noise(found) + ".", values
    if found.interval is not None:
        low, high = found.interval if ahead == found.second else (-found.interval[1], -found.interval[0])
        values.update(low=points(low), high=points(high), p=p_text(found.p_value),
                      seeds=seeds_each(found.seeds))
        if found.p_value >= 0.05:
            return ("**{ahead} scores {gap} points of test accuracy above {behind}, within the seed-to-seed "
                    "noise** ({score} against {other}; 95% CI {low} to {high} points, {seeds}, Welch {p}).",
                    values)
        return ("**{ahead} beats {behind} by {gap} points of test accuracy** ({score} against {other}; 95% CI "
                "{low} to {high} points, {seeds}, Welch {p}).", values)
    return ("**{ahead} beats {behind} by {gap} points of test accuracy** ({score} against {other}, one seed "
            "each).", values)


def _noise(found: Contrast) -> str:
    if found.p_value is None:
        return "; one seed each"
    return f"; {seeds_each(found.seeds)}, Welch {p_text(found.p_value)}"


def seeds_each(seeds: tuple[int, int]) -> str:
    """'3 seeds each', or '3 and 2 seeds'."""
    return f"{seeds[0]} seeds each" if seeds[0] == seeds[1] else f"{seeds[0]} and {seeds[1]} seeds"


def warning(health: RunHealth) -> tuple[str, dict]:
    """A troubled run said plainly: at chance level, or answering one class (a template and its values)."""
    values = {"spec": health.spec, "seed": health.seed, "accuracy": percent(health.accuracy),
              "guessing": percent(health.guessing), "dominant": health.dominant_class,
              "share": percent(health.dominant_share)}
    said = []
    if health.at_chance:
        said.append("is at chance level: {accuracy} test accuracy, where always answering the most common "
                    "class scores {guessing}")
    if health.dominant_class is not None and health.dominant_share >= 0.5:
        said.append("answers “{dominant}” for {share} of the test images")
    return ("**Warning: {spec} (seed {seed}) " + "; it ".join(said) + ".** Its results below tell nothing "
            "about its design: check the learning rate, the number of epochs and the data.", values)


def table(document: Document, comparison: Comparison) -> None:
    """The side-by-side table, accuracies in percent (mean ± sample standard deviation over seeds)."""
    document.heading("Results side by side", "results")
    # the answer's columns first: on a phone the table scrolls, and the rest may wait
    from cnnlab.presenters.comparison import tta_explanation, tta_heading

    augmented = [] if comparison.tta is None else [tta_heading(comparison.tta)]
    rows = [[model.spec, percent_stat(model.test_accuracy),
             *([_tta_cell(model)] if augmented else []), _loss(model),
             percent_stat(model.final_val_accuracy), percent_stat(model.best_val_accuracy), f"{model.first.params:,}",
             f"{model.first.macs:,}", _seconds(model)] for model in comparison.models]
    document.table(["model", "test acc", *augmented, "test loss", "final val acc", "best val acc", "parameters",
                    "MACs per image", "s per epoch"], rows)
    if augmented:
        document.prose("{explanation}; the other columns, and everything below, are without it.",
                       explanation=tta_explanation(comparison.tta))
    seeds = sorted({run.seed for model in comparison.models for run in model.runs})
    if comparison.seeds > 1:
        document.prose("Mean ± sample standard deviation over {seeds} of each model.", seeds=seeds_text(seeds))
    else:
        document.prose("One run per model ({seeds}).", seeds=seeds_text(seeds))
    _recipes(document, comparison)


def _recipes(document: Document, comparison: Comparison) -> None:
    """Each model's training options in words, when not every model trained with the experiment's recipe."""
    from cnnlab.presenters.comparison import recipe_lines

    if recipe_lines(comparison):
        for model in comparison.models:
            document.prose("Recipe of {spec}: {text}.", spec=model.spec, text=model.first.options_text)


def _tta_cell(model: ModelResult) -> str:
    stat = model.tta_accuracy
    return "—" if stat is None else percent_stat(stat)


def _seconds(model: ModelResult) -> str:
    stat = model.seconds_per_epoch
    return f"{stat.mean:.2f}" if stat.std is None else f"{stat.mean:.2f} ± {stat.std:.2f}"


def _loss(model: ModelResult) -> str:
    stat = model.test_loss
    return f"{stat.mean:.3f}" if stat.std is None else f"{stat.mean:.3f} ± {stat.std:.3f}"


def curves(document: Document, comparison: Comparison) -> None:
    """Loss and accuracy per epoch side by side, then where each model ended, in words."""
    models = comparison.models
    document.heading("Learning curves", "curves")
    several = comparison.seeds > 1
    how = " Thin lines are single seeds, bold lines their mean." if several else ""
    document.figures(
        document.picture(figures.learning_curve(models, "loss"), "learning-curves-loss",
                         "Training and validation loss per epoch of every model",
                         "Loss per epoch: training solid, validation dashed." + how),
        document.picture(figures.learning_curve(models, "accuracy"), "learning-curves-accuracy",
                         "Training and validation accuracy per epoch of every model",
                         "Accuracy per epoch: training solid, validation dashed." + how))
    for model in models:
        _ending(document, model, several)


def _ending(document: Document, model: ModelResult, several: bool) -> None:
    last = [run.history[-1] for run in model.runs]
    train = sum(row["accuracy"] or 0.0 for row in last) / len(last)
    valid = [row["val_accuracy"] for row in last if row.get("val_accuracy") is not None]
    values = {"spec": model.spec, "epoch": int(max(row["epoch"] for row in last)), "train": percent(train)}
    mean = " (mean of the seeds)" if several else ""
    if not valid:
        document.prose("{spec} ends epoch {epoch} at {train} training accuracy" + mean + ".", **values)
        return
    gap = train - sum(valid) / len(valid)
    values.update(valid=percent(sum(valid) / len(valid)), gap=points(abs(gap)))
    document.prose("{spec} ends epoch {epoch} at {train} training and {valid} validation accuracy" + mean + ": "
                   + ("training is {gap} points ahead (the gap that grows when a model overfits)." if gap >= 0 else
                      "validation is {gap} points ahead (training accuracy is measured with dropout on, "
                      "averaged over an epoch of learning)."), **values)

"""--precision: bf16 only on hardware with bf16 units, "auto" chosen by timing, the choice recorded and kept."""

import json
from pathlib import Path

import pytest
import torch

from cnnlab import runs
from cnnlab.cli.main import main
from cnnlab.engine import estimate as estimate_module
from cnnlab.engine import evaluation, precision, steps
from cnnlab.engine.callbacks import TrainingCallback
from cnnlab.engine.config import TrainConfig

AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma avx512f\n"
WITH_BF16 = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512_bf16\n"
WITH_AMX = "processor\t: 0\nflags\t\t: fpu avx2 amx_tile amx_bf16\n"
CPU = torch.device("cpu")


def fake_cpu(monkeypatch, tmp_path, text: str) -> None:
    """This CPU, as far as cnnlab can tell, is the one ``text`` (a /proc/cpuinfo) describes."""
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    monkeypatch.setattr(precision, "CPUINFO", path)


def fake_timer(monkeypatch, seconds: dict) -> list[str]:
    """estimate_epoch_seconds returns ``seconds[precision]``; the precisions it was asked for are listed."""
    asked = []

    def estimate(state, data, config, *args, **kwargs):
        asked.append(config.precision)
        return seconds[config.precision]

    monkeypatch.setattr(estimate_module, "estimate_epoch_seconds", estimate)
    return asked


def spy_autocast(monkeypatch) -> list[str]:
    """The precision of every autocast the training and evaluation loops open."""
    used, real = [], steps.autocast

    def autocast(device, chosen):
        used.append(chosen)
        return real(device, chosen)

    monkeypatch.setattr(steps, "autocast", autocast)  # training
    monkeypatch.setattr(evaluation, "autocast", autocast)  # the one evaluation path
    return used


class Notes(TrainingCallback):
    """A callback that keeps the notes and stops training after ``stop_after`` epochs (None: never)."""

    def __init__(self, stop_after=None):
        self.notes, self.stop_after = [], stop_after

    def note(self, text): self.notes.append(text)

    def on_epoch_end(self, record, state):
        if record.epoch == self.stop_after:
            raise KeyboardInterrupt("stopped after a checkpoint, as a kill would")


@pytest.mark.parametrize("text, expected", [(AVX2_ONLY, False), (WITH_BF16, True), (WITH_AMX, True),
                                            ("Features\t: fp asimd bf16 i8mm\n", True)])
def test_bf16_units_are_read_from_the_cpu_flags(monkeypatch, tmp_path, text, expected):
    fake_cpu(monkeypatch, tmp_path, text)
    assert precision.cpu_has_bf16() is expected
    assert precision.has_bf16_units(CPU) is expected


def test_without_cpuinfo_torch_decides_and_unknown_is_no(monkeypatch, tmp_path):
    monkeypatch.setattr(precision, "CPUINFO", tmp_path / "missing")
    monkeypatch.setattr(precision.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert precision.cpu_has_bf16()
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")  # a torch without the check
    assert not precision.cpu_has_bf16()


def test_bf16_without_units_trains_in_fp32_and_says_why(monkeypatch, tmp_path):
    fake_cpu(monkeypatch, tmp_path, AVX2_ONLY)
    asked = fake_timer(monkeypatch, {"fp32": 1.0, "bf16": 0.5})
    choice = precision.choose_precision("bf16", CPU, lambda p: estimate_module.estimate_epoch_seconds(None, None, None))
    assert choice.precision == "fp32" and asked == []  # no bf16 units: nothing to time
    assert choice.reason == ("--precision bf16: this CPU has no bf16 units (no avx512_bf16/amx_bf16): "
                             "bf16 would be ~20x slower; training in fp32")


def test_bf16_with_units_is_kept_without_a_note(monkeypatch, tmp_path):
    fake_cpu(monkeypatch, tmp_path, WITH_BF16)
    assert precision.choose_precision("bf16", CPU, lambda p: pytest.fail("timed")) == precision.PrecisionChoice("bf16")


def test_fp32_default_is_never_timed_or_changed(monkeypatch, tmp_path):
    fake_cpu(monkeypatch, tmp_path, WITH_BF16)
    asked = fake_timer(monkeypatch, {"fp32": 9.0, "bf16": 1.0})
    config = TrainConfig()
    assert config.precision == "fp32"  # the experiment's recipe
    assert precision.session_precision(None, None, config, Notes()) is config and asked == []


@pytest.mark.parametrize("seconds, chosen", [({"fp32": 2.0, "bf16": 1.0}, "bf16"),
                                             ({"fp32": 1.0, "bf16": 2.0}, "fp32")])
def test_auto_trains_in_the_faster_precision_and_records_it(monkeypatch, tmp_path, seconds, chosen):
    fake_cpu(monkeypatch, tmp_path, WITH_BF16)
    asked = fake_timer(monkeypatch, seconds)
    used = spy_autocast(monkeypatch)
    callback = Notes()
    result = runs.train("mlp", "digits", TrainConfig(epochs=1, precision="auto"), out=tmp_path, callback=callback)
    assert sorted(asked[:2]) == ["bf16", "fp32"]  # each timed once, before training
    assert [note for note in callback.notes if note.startswith("--precision auto")] == [
        f"--precision auto: training in {chosen} (an epoch is estimated at {seconds['bf16']:.2f} s in bf16, "
        f"{seconds['fp32']:.2f} s in fp32, timed on warm-up steps)"]
    assert set(used) == {chosen}  # every training step and the validation
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["precision_used"] == chosen and saved["train"]["precision"] == "auto"


@pytest.mark.parametrize("bf16_seconds, chosen", [(0.97, "fp32"), (0.94, "bf16")])
def test_auto_takes_bf16_only_when_clearly_faster(monkeypatch, tmp_path, bf16_seconds, chosen):
    fake_cpu(monkeypatch, tmp_path, WITH_BF16)
    seconds = {"fp32": 1.0, "bf16": bf16_seconds}
    assert precision.choose_precision("auto", CPU, seconds.__getitem__).precision == chosen


def test_auto_without_units_is_fp32_without_timing(monkeypatch, tmp_path):
    fake_cpu(monkeypatch, tmp_path, AVX2_ONLY)
    asked = fake_timer(monkeypatch, {"fp32": 2.0, "bf16": 1.0})
    choice = precision.choose_precision("auto", CPU, lambda p: estimate_module.estimate_epoch_seconds(None, None, None))
    assert choice.precision == "fp32" and asked == [] and "no bf16 units" in choice.reason


def test_resume_and_evaluate_use_the_recorded_precision(monkeypatch, tmp_path):
    fake_cpu(monkeypatch, tmp_path, WITH_BF16)
    fake_timer(monkeypatch, {"fp32": 2.0, "bf16": 1.0})  # auto picks bf16
    with pytest.raises(KeyboardInterrupt):
        runs.train("mlp", "digits", TrainConfig(epochs=2, precision="auto"), out=tmp_path, name="r",
                   callback=Notes(stop_after=1))
    run_dir = tmp_path / "r"
    asked = fake_timer(monkeypatch, {"fp32": 1.0, "bf16": 2.0})  # timed again, auto would now pick fp32
    used = spy_autocast(monkeypatch)
    result = runs.resume(run_dir, Notes())
    assert [row.epoch for row in result.history] == [1, 2]
    assert "fp32" not in asked and set(used) == {"bf16"}  # continued in bf16, not chosen again
    assert json.loads((run_dir / "config.json").read_text())["precision_used"] == "bf16"
    assert runs.evaluate(run_dir).precision == "bf16"
    fake_cpu(monkeypatch, tmp_path, AVX2_ONLY)  # the run evaluated on a CPU without bf16 units
    assert runs.evaluate(run_dir).precision == "fp32"


def test_damaged_precision_record_is_refused(tmp_path):
    assert main(["train", "mlp", "--dataset", "digits", "--epochs", "1", "--quiet", "--out", str(tmp_path),
                 "--name", "r"]) == 0
    path = Path(tmp_path / "r" / "config.json")
    path.write_text(json.dumps({**json.loads(path.read_text()), "precision_used": "fp8"}))
    with pytest.raises(runs.RunError, match="'precision_used' must be fp32 or bf16"):
        runs.evaluate(tmp_path / "r")


@pytest.mark.parametrize("command", ["train", "compare"])
def test_cli_offers_auto(command):
    from cnnlab.cli.main import build_parser

    assert build_parser().parse_args([command, "--precision", "auto"]).precision == "auto"
    action = next(action for action in build_parser()._subparsers._group_actions[0].choices[command]._actions
                  if "--precision" in action.option_strings)
    assert tuple(action.choices) == ("fp32", "bf16", "auto") and "auto: bf16 only where" in action.help


def test_cli_bf16_on_a_cpu_without_units_notes_the_fallback(monkeypatch, tmp_path, capsys):
    fake_cpu(monkeypatch, tmp_path, AVX2_ONLY)
    used = spy_autocast(monkeypatch)
    assert main(["train", "mlp", "--dataset", "digits", "--epochs", "1", "--precision", "bf16",
                 "--out", str(tmp_path / "runs"), "--name", "r"]) == 0
    err = capsys.readouterr().err
    assert err.count("this CPU has no bf16 units (no avx512_bf16/amx_bf16): bf16 would be ~20x slower; "
                     "training in fp32") == 1
    assert set(used) == {"fp32"}
    assert json.loads((tmp_path / "runs" / "r" / "config.json").read_text())["precision_used"] == "fp32"


def test_the_python_api_evaluates_and_predicts_in_the_precision_fit_trained_in(monkeypatch, tmp_path):
    import cnnlab

    fake_cpu(monkeypatch, tmp_path, WITH_BF16)
    fake_timer(monkeypatch, {"fp32": 2.0, "bf16": 1.0})  # auto picks bf16
    data = cnnlab.load_data("digits")
    model = cnnlab.Model("mlp")
    model.fit(data.x_train, data.y_train, epochs=1, verbose=0, precision="auto")
    used = spy_autocast(monkeypatch)
    model.evaluate(data.x_test, data.y_test)
    probabilities = model.predict(data.x_test[:5])
    assert used == ["bf16", "bf16"] and probabilities.dtype == "float32"
    fake_cpu(monkeypatch, tmp_path, AVX2_ONLY)  # the same model on a CPU without bf16 units: fp32, not 20x slower
    model.evaluate(data.x_test, data.y_test)
    assert used[-1] == "fp32"
    fresh = cnnlab.Model("mlp")
    fresh.fit(data.x_train, data.y_train, epochs=1, verbose=0)
    fake_cpu(monkeypatch, tmp_path, WITH_BF16)
    fresh.evaluate(data.x_test, data.y_test)
    assert used[-1] == "fp32"  # trained in fp32 (the homework's), evaluated so


def test_a_model_loaded_from_a_run_evaluates_in_its_recorded_precision(monkeypatch, tmp_path):
    import cnnlab

    fake_cpu(monkeypatch, tmp_path, WITH_BF16)
    runs.train("mlp", "digits", TrainConfig(epochs=1, precision="bf16"), out=tmp_path, name="r", callback=Notes())
    data = cnnlab.load_data("digits")
    used = spy_autocast(monkeypatch)
    loss, _ = cnnlab.load_model(tmp_path / "r").evaluate(data.x_test, data.y_test)
    assert used == ["bf16"] and loss == pytest.approx(runs.evaluate(tmp_path / "r").loss, rel=1e-6)


def test_probabilities_under_bf16_are_the_float32_softmax_of_the_logits():
    from cnnlab.net.builder import build_model
    from cnnlab.net.presets import preset

    model = build_model(preset("cnn"), (8, 8, 1)).eval()
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), steps.autocast(CPU, "bf16"):
        logits, probabilities = model(x), model.probabilities(x)
    assert logits.dtype == torch.bfloat16 and probabilities.dtype == torch.float32
    torch.testing.assert_close(probabilities, torch.softmax(logits.float(), dim=1))
    # a bf16 softmax would round near ties to one value: then predict's argmax is not evaluate's
    assert torch.equal(probabilities.argmax(1), logits.float().argmax(1))

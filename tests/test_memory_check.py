"""The memory check: an estimate of a run's memory, refused before any folder when it cannot fit."""

import os

import pytest

from cnnlab.cli.main import main
from cnnlab.data import load_dataset
from cnnlab.engine import memory
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.memory import Available, MemoryCheckError, check_memory, estimate, optimizer_states
from cnnlab.engine.preflight import check_network
from cnnlab.errors import SpecError
from cnnlab.net.presets import PRESETS
from cnnlab.net.resolve import fit_spec, resolve_spec, summarize

from fixtures import assert_error_line

HUGE = "layers:\n  - {kind: flatten}\n  - {kind: dense, units: 10000000, activation: relu}\n" \
       "  - {kind: dense, units: 10, activation: softmax}\n"
SMALL = "layers:\n  - {kind: flatten}\n  - {kind: dense, units: 10, activation: softmax}\n"
FAST = ["--dataset", "digits", "--epochs", "1", "--quiet"]


def info_of(spec: str, shape=(8, 8, 1), classes: int = 10):
    return summarize(fit_spec(resolve_spec(spec), shape, classes))


def test_estimate_of_a_small_dense_network_by_hand():
    info = info_of(SMALL)  # 8*8*1*10 + 10 = 650 parameters
    needed = estimate(info, TrainConfig(batch_size=32, eval_batch_size=1024), images=100, val_images=20)
    assert (needed.parameters, needed.gradients, needed.optimizer) == (650 * 4, 650 * 4, 2 * 650 * 4)
    # training: outputs (flatten 64 + dense 10) kept, plus the largest output's gradient twice: 32 * 4 * (74 + 128)
    # evaluation: 20 images, the largest input + output pair: flatten's 64 in, 64 out, or 64 in, 10 twice
    assert needed.activations == max(32 * 4 * (74 + 2 * 64), 20 * 4 * (64 + 64))
    assert needed.data == 100 * 64 * 4
    assert needed.total == sum((needed.parameters, needed.gradients, needed.optimizer, needed.activations,
                                needed.data))


@pytest.mark.parametrize(("options", "states"), [
    ({"optimizer": "adam"}, 2), ({"optimizer": "adamw"}, 2), ({"optimizer": "rmsprop"}, 1),
    ({"optimizer": "sgd"}, 0), ({"optimizer": "sgd", "momentum": 0.9}, 1)])
def test_optimizer_state_counts(options, states):
    assert optimizer_states(TrainConfig(**options)) == states


def test_meminfo_is_read_in_bytes(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:  1000 kB\nMemAvailable:   2000000 kB\n")
    assert memory._meminfo_available(str(meminfo)) == 2000000 * 1024
    meminfo.write_text("MemTotal: 5 kB\n")
    assert memory._meminfo_available(str(meminfo)) is None


def test_available_ram_is_positive_and_at_most_the_total():
    room = memory.available_ram()
    assert 0 < room.bytes <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize(("shape", "images"), [((8, 8, 1), 1797), ((32, 32, 3), 50000)])
def test_presets_pass_and_fit_a_small_gpu(name, shape, images):
    # their whitening makes 24 filters of 3 channels (not 1), and their poolings need 32
    if name in ("fast", "airbench93", "airbench94") and shape[0] < 32:
        with pytest.raises(SpecError, match="layer .* field 'filters': patch_whitening"):
            info_of(name, shape)
        return
    info = info_of(name, shape)
    check_memory(info, TrainConfig(), images, "cpu", images // 5)  # this machine
    assert estimate(info, TrainConfig(), images, images // 5).total < 2e9  # CIFAR-10 included: under 2 GB


def test_huge_dense_is_refused_with_no_folder_left(tmp_path, capsys, monkeypatch):
    """With a device of 8 GB whatever this machine has: the 10^7-unit dense layer needs tens of GB."""
    monkeypatch.setattr(memory, "available", lambda device: Available(8 * 10**9, "a test's 8 GB"))
    spec = tmp_path / "huge.yaml"
    spec.write_text(HUGE)
    out = tmp_path / "runs"
    assert main(["train", str(spec), *FAST, "--device", "cpu", "--out", str(out)]) == 2
    assert_error_line(capsys.readouterr().err, "training 'model' with batch size 32 needs about 35.0 GB",
                      "parameters 3.0 GB", "adam state 6.0 GB", "but the cpu has 8.0 GB available (a test's 8 GB)")
    assert not out.exists()


def test_huge_dense_is_refused_on_this_machine(tmp_path, capsys):
    """The same without stand-ins: this machine's MemAvailable, unless it has more than the run needs."""
    needed = estimate(info_of(HUGE), TrainConfig(), 1437, 288).total
    if memory.available_ram().bytes > needed:
        pytest.skip(f"this machine has more than {needed / 1e9:.0f} GB available: the network would fit")
    spec = tmp_path / "huge.yaml"
    spec.write_text(HUGE)
    assert main(["train", str(spec), *FAST, "--device", "cpu", "--out", str(tmp_path / "runs")]) == 2
    assert_error_line(capsys.readouterr().err, "needs about", "(MemAvailable in /proc/meminfo)")
    assert not (tmp_path / "runs").exists()


def test_compare_refuses_before_its_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(memory, "available", lambda device: Available(10**9, "a test's 1 GB"))
    spec = tmp_path / "huge.yaml"
    spec.write_text(HUGE)
    assert main(["compare", "mlp", str(spec), *FAST, "--device", "cpu", "--out", str(tmp_path / "runs")]) == 2
    assert_error_line(capsys.readouterr().err, "needs about 35.0 GB")
    assert not (tmp_path / "runs").exists()


def test_estimate_is_refused_only_above_what_is_available(monkeypatch):
    info = info_of("cnn")
    needed = estimate(info, TrainConfig(), 1437, 288).total
    monkeypatch.setattr(memory, "available", lambda device: Available(needed, "exactly enough"))
    assert check_memory(info, TrainConfig(), 1437, "cpu", 288).total == needed
    monkeypatch.setattr(memory, "available", lambda device: Available(needed - 1, "one byte short"))
    with pytest.raises(MemoryCheckError, match="one byte short"):
        check_memory(info, TrainConfig(), 1437, "cpu", 288)


def test_the_check_sees_the_digits_split():
    data = load_dataset("digits")
    checked = check_network(resolve_spec("cnn"), TrainConfig(val_split=0.2), data, "cpu")
    assert checked.spec.input_shape == data.image_shape
    needed = checked.memory
    assert needed.data == len(data.y_train) * 64  # uint8 pixels stay uint8 on the device: one byte a value


def test_on_cuda_the_free_device_memory_counts(monkeypatch):
    """CUDA's free memory, as torch.cuda.mem_get_info reports it (stood in for here: no GPU needed)."""
    import torch

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index: (3 * 10**9 + index, 80 * 10**9))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert memory.available(torch.device("cuda")) == Available(3 * 10**9, "free on cuda:0")
    assert memory.available(torch.device("cuda", 1)) == Available(3 * 10**9 + 1, "free on cuda:1")
    with pytest.raises(MemoryCheckError, match=r"but the cuda has 3\.0 GB available \(free on cuda:0\)"):
        check_memory(info_of(HUGE), TrainConfig(), 1437, torch.device("cuda"), 288)

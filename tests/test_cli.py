"""One consistent command line, checked on the parser itself: --json, help, --dataset, --out; completion; typos."""

import argparse
import json
import shutil
import subprocess
import sys

import pytest

from cnnlab.cli.main import build_parser, main
from cnnlab.errors import SpecError
from cnnlab.net.presets import preset

from fixtures import assert_error_line

RESULT_COMMANDS = {"models", "summary", "train", "evaluate", "predict", "compare", "data info", "export",
                   "explain"}
OTHER_COMMANDS = {"data show": "writes an image", "completion": "prints a shell script"}


def leaf_commands(parser: argparse.ArgumentParser, prefix: tuple = ()) -> dict[str, argparse.ArgumentParser]:
    """Every runnable command, by its words (``data info``), with its parser."""
    groups = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not groups:
        return {" ".join(prefix): parser}
    found = {}
    for name, sub in groups[0].choices.items():
        found.update(leaf_commands(sub, (*prefix, name)))
    return found


def subcommand_helps(parser: argparse.ArgumentParser, prefix: tuple = ()) -> dict[str, str | None]:
    """The one-line help of every command and command group."""
    helps = {}
    for group in (a for a in parser._actions if isinstance(a, argparse._SubParsersAction)):
        for choice in group._choices_actions:
            helps[" ".join((*prefix, choice.dest))] = choice.help
            helps.update(subcommand_helps(group.choices[choice.dest], (*prefix, choice.dest)))
    return helps


COMMANDS = leaf_commands(build_parser())


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {option: action for action in parser._actions for option in action.option_strings}


def test_every_command_is_classified():
    assert set(COMMANDS) == RESULT_COMMANDS | set(OTHER_COMMANDS)


@pytest.mark.parametrize("command", sorted(RESULT_COMMANDS))
def test_every_command_that_prints_results_has_json(command):
    action = options(COMMANDS[command]).get("--json")
    assert action is not None and isinstance(action, argparse._StoreTrueAction), command


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_and_argument_has_help(command):
    for action in COMMANDS[command]._actions:
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS and len(action.help) > 3, f"{command} {name}"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_help_page_formats(command):
    text = COMMANDS[command].format_help()  # a stray % in a help text would raise here
    assert text.startswith("usage: cnnlab ")


def test_every_command_has_a_one_line_help():
    helps = subcommand_helps(build_parser())
    assert set(COMMANDS) <= set(helps)
    assert all(text for text in helps.values()), helps


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_dataset_is_an_option_everywhere(command):
    parser = COMMANDS[command]
    for action in parser._actions:
        if not action.option_strings and "dataset" in f"{action.dest} {action.metavar}".lower():
            assert action.help.startswith("deprecated"), f"{command} takes the dataset positionally"
    if "--cache-dir" in options(parser):  # it loads a dataset
        assert "--dataset" in options(parser), command


@pytest.mark.parametrize("command", ["data show", "export"])
def test_output_files_are_named_with_out(command):
    action = options(COMMANDS[command])["--out"]
    assert {"-o", "--output"} <= set(action.option_strings) and action.dest == "out"


def test_train_and_compare_take_the_same_recipe_options():
    train, compare = options(COMMANDS["train"]), options(COMMANDS["compare"])
    for option in ("--weight-decay", "--lr", "--epochs", "--seed", "--out", "--dataset", "--json"):
        assert option in train and option in compare, option


def test_weight_decay_reaches_the_config():
    from cnnlab.cli.train_commands import config_from_args

    args = build_parser().parse_args(["train", "mlp", "--optimizer", "adamw", "--weight-decay", "0.01"])
    assert config_from_args(args).validate().weight_decay == 0.01
    args = build_parser().parse_args(["train", "mlp"])
    assert config_from_args(args).weight_decay is None  # Keras' default, applied by the optimizer


def test_a_negative_weight_decay_is_one_clear_error(tmp_path, capsys):
    argv = ["train", "mlp", "--dataset", "digits", "--weight-decay", "-0.01", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert_error_line(capsys.readouterr().err, "weight_decay must be a non-negative number, got -0.01")
    assert not list(tmp_path.iterdir())


def test_the_old_positional_dataset_still_works_with_a_note(capsys):
    assert main(["data", "info", "digits", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["name"] == "digits"
    assert "deprecated" in captured.err and "--dataset digits" in captured.err
    assert "Traceback" not in captured.err and "error" not in captured.err


def test_the_dataset_option_gives_no_note(capsys):
    assert main(["data", "info", "--dataset", "digits"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("dataset: digits") and captured.err == ""


def test_two_different_datasets_are_an_error(capsys):
    assert main(["data", "info", "digits", "--dataset", "cifar10"]) == 2
    assert_error_line(capsys.readouterr().err, "two datasets given", "'digits'", "'cifar10'")


@pytest.mark.parametrize("flag", ["--out", "-o", "--output"])
def test_data_show_writes_where_out_says(tmp_path, capsys, flag):
    path = tmp_path / "grid.png"
    assert main(["data", "show", "--dataset", "digits", "--n", "4", flag, str(path)]) == 0
    assert path.read_bytes()[:4] == b"\x89PNG" and capsys.readouterr().err == ""


def test_export_takes_out_and_prints_json(tmp_path, capsys):
    path = tmp_path / "net.py"
    assert main(["export", "mlp", "--to", "pytorch", "--input", "8x8x1", "--out", str(path), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["to"] == "pytorch" and record["files"][0] == str(path) and path.exists()
    assert set(record["checks"]) >= {"runtime"}


def test_models_json_lists_presets_and_kinds(capsys):
    assert main(["models", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in record["presets"]] == ["mlp", "cnn", "resnet20", "fast", "airbench93", "airbench94",
                                                      "q32"]
    assert record["presets"][6]["input"] == [64, 64, 3]
    conv = next(kind for kind in record["kinds"] if kind["kind"] == "conv2d")
    assert conv["keras_class"] == "Conv2D" and conv["fields"]["filters"] is None and conv["fields"]["strides"] == 1


@pytest.mark.parametrize("argv,suggestion", [
    (["summary", "cnnn"], "did you mean 'cnn'?"),
    (["summary", "resnet2"], "did you mean 'resnet20'?"),
    (["train", "mpl", "--dataset", "digits"], "did you mean 'mlp'?"),
    (["compare", "mlp", "cnnn", "--dataset", "digits"], "did you mean 'cnn'?"),
])
def test_a_mistyped_preset_gets_a_suggestion(argv, suggestion, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path)] if argv[0] != "summary" else argv) == 2
    assert_error_line(capsys.readouterr().err, suggestion)
    assert not list(tmp_path.iterdir())


def test_preset_names_its_closest_match():
    with pytest.raises(SpecError, match=r"unknown preset 'cnnn' \(did you mean 'cnn'\?\); presets: mlp, cnn"):
        preset("cnnn")
    with pytest.raises(SpecError) as info:
        preset("zzzzzz")
    assert "did you mean" not in str(info.value)


@pytest.mark.parametrize("shell,marker", [("bash", "_shtab_cnnlab"), ("zsh", "#compdef cnnlab")])
def test_completion_prints_a_script_of_every_command(shell, marker, capsys):
    pytest.importorskip("shtab")
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert marker in script
    for word in ("compare", "predict", "--weight-decay", "--top", "--dataset", "completion"):
        assert word in script, word
    assert ("_shtab_compgen_dirs" if shell == "bash" else "_files -/") in script  # RUN_DIR, --out DIR


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_the_bash_script_completes_in_bash():
    pytest.importorskip("shtab")
    script = subprocess.run([sys.executable, "-m", "cnnlab", "completion", "bash"], capture_output=True,
                            text=True, check=True).stdout
    probe = script + '\nCOMP_WORDS=(cnnlab train --weight); COMP_CWORD=2; _shtab_cnnlab; echo "${COMPREPLY[@]}"\n'
    result = subprocess.run(["bash", "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.split() == ["--weight-decay"], result.stderr


def test_completion_without_shtab_is_one_line_saying_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "shtab", None)  # import shtab then raises ImportError
    assert main(["completion", "bash"]) == 2
    assert_error_line(capsys.readouterr().err, "pip install 'cnnlab[completion]'")

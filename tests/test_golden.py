"""The golden-file fixture: a mismatch fails with a readable diff; ``--update-golden`` rewrites instead."""

import pytest

from conftest import Golden


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "table.txt").write_text("Model: \"cnn\"\nconv2d  896\ndense   10\n")
    return tmp_path


def test_a_mismatch_fails_with_a_diff_and_keeps_the_file(folder):
    with pytest.raises(pytest.fail.Exception) as failed:
        Golden(False, folder).check("table.txt", "Model: \"cnn\"\nconv2d  896\ndense   11\n")
    message = str(failed.value)
    assert "-dense   10\n+dense   11" in message and "--update-golden" in message and "table.txt" in message
    assert (folder / "table.txt").read_text() == "Model: \"cnn\"\nconv2d  896\ndense   10\n"


def test_a_match_passes_and_writes_nothing(folder):
    before = (folder / "table.txt").stat().st_mtime_ns
    Golden(True, folder).check("table.txt", "Model: \"cnn\"\nconv2d  896\ndense   10\n")
    assert (folder / "table.txt").stat().st_mtime_ns == before


def test_update_rewrites_from_the_output(folder):
    Golden(True, folder).check("table.txt", "Model: \"cnn\"\nconv2d  896\ndense   11\n")
    assert (folder / "table.txt").read_text() == "Model: \"cnn\"\nconv2d  896\ndense   11\n"
    Golden(False, folder).check("table.txt", "Model: \"cnn\"\nconv2d  896\ndense   11\n")


def test_lines_before_from_line_stay_the_files_own(folder):
    Golden(False, folder).check("table.txt", "Model: \"functional\"\nconv2d  896\ndense   10\n", from_line=1)
    with pytest.raises(pytest.fail.Exception):
        Golden(False, folder).check("table.txt", "Model: \"functional\"\nconv2d  897\ndense   10\n", from_line=1)
    Golden(True, folder).check("table.txt", "Model: \"functional\"\nconv2d  897\ndense   10\n", from_line=1)
    assert (folder / "table.txt").read_text() == "Model: \"cnn\"\nconv2d  897\ndense   10\n"


def test_the_flag_is_off_by_default(request, golden):
    assert golden.update is request.config.getoption("--update-golden")

"""Issue 32: options that named something unusable were taken: an export file named as a module it would hide,
a Dask scheduler on a closed port (found only after Dask's 30 s connect timeout)."""

from __future__ import annotations

import socket
import time

import pytest

from cnnlab.cli.main import main

from fixtures import assert_error_line


@pytest.mark.parametrize(("name", "hidden"), [("pathlib.py", "the standard library's 'pathlib' module"),
                                              ("json.py", "the standard library's 'json' module"),
                                              ("yaml.py", "the installed 'yaml' module")])
def test_an_export_named_as_a_module_it_would_hide_is_refused(tmp_path, capsys, name, hidden):
    pytest.importorskip(name[:-3])
    assert main(["export", "mlp", "--to", "keras", "-o", str(tmp_path / name)]) == 2
    assert_error_line(capsys.readouterr().err, f"-o {tmp_path / name}: the file would hide {hidden}")
    assert not any(tmp_path.iterdir())


def closed_port() -> int:
    """A port nothing listens on: bound, then closed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("scheme", ["tcp", "ws"])
def test_a_scheduler_on_a_closed_port_is_refused_at_once(tmp_path, capsys, scheme):
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    from test_executor import compare_cli

    address = f"{scheme}://127.0.0.1:{closed_port()}"
    connect_timeout_s = 240  # Dask would retry the refused port this long; the check must not wait for it
    start = time.monotonic()
    with dask.config.set({"distributed.comm.timeouts.connect": f"{connect_timeout_s}s"}):
        code, _ = compare_cli(tmp_path, "--executor", "dask", "--scheduler", address)
    assert code == 2
    assert_error_line(capsys.readouterr().err, f"cannot reach the Dask scheduler at {address} (connection refused")
    assert not any(tmp_path.iterdir())  # refused before the comparison made its folder
    assert time.monotonic() - start < connect_timeout_s / 2  # a guard only: a regression waits the full timeout


@pytest.mark.parametrize("address", ["", "ucx://127.0.0.1:1"])
def test_a_scheduler_address_dask_cannot_use_is_one_line(tmp_path, capsys, address):
    pytest.importorskip("distributed")
    from test_executor import compare_cli

    code, _ = compare_cli(tmp_path, "--executor", "dask", "--scheduler", address)
    assert code == 2
    assert_error_line(capsys.readouterr().err, "scheduler")

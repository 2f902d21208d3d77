"""The test suite's own rule for the shared real data: skip where they are absent, fail in CI (CI=true)."""

import json

import conftest
import pytest


def _outcome(name):
    """What `shared_file(name)` does to the test that calls it: (outcome exception type or None, message)."""
    try:
        conftest.shared_file(name)
    except (pytest.fail.Exception, pytest.skip.Exception) as err:  # caught here so that neither ends this test
        return type(err), str(err)
    return None, ""


def test_missing_shared_file_skips_locally_and_fails_in_ci(monkeypatch, tmp_path):
    monkeypatch.setattr(conftest, "DATA_DIR", tmp_path)
    (tmp_path / "present.h5ad").write_bytes(b"")
    monkeypatch.setenv("CI", "true")
    assert conftest.shared_file("present.h5ad") == tmp_path / "present.h5ad"
    kind, message = _outcome("absent.h5ad")
    assert kind is pytest.fail.Exception and "absent.h5ad is missing" in message
    for value in ("false", ""):
        monkeypatch.setenv("CI", value)
        assert _outcome("absent.h5ad")[0] is pytest.skip.Exception
    monkeypatch.delenv("CI")
    assert _outcome("absent.h5ad")[0] is pytest.skip.Exception
    # the mark for tests of the whole folder: a skip condition locally, none in CI
    assert conftest.skip_without_shared_data(False).args[0] is True
    assert conftest.skip_without_shared_data(True).args[0] is False
    monkeypatch.setenv("CI", "true")
    assert conftest.skip_without_shared_data(False).args[0] is False


def test_a_missing_dev_dependency_skips_locally_and_fails_in_ci(monkeypatch):
    def outcome():
        try:
            conftest.require("no_such_module_scmodal_test")
        except (pytest.fail.Exception, pytest.skip.Exception) as err:
            return type(err), str(err)
        return None, ""

    monkeypatch.setenv("CI", "true")
    kind, message = outcome()
    assert kind is pytest.fail.Exception and "no_such_module_scmodal_test is missing" in message
    monkeypatch.delenv("CI")
    assert outcome()[0] is pytest.skip.Exception
    assert conftest.require("json").dumps([1]) == "[1]"  # present: the module itself


def test_auto_workers_are_one_more_than_the_usable_cores(monkeypatch):
    monkeypatch.setattr(conftest.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert conftest.pytest_xdist_auto_num_workers(None) == 3
    monkeypatch.setattr(conftest.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert conftest.pytest_xdist_auto_num_workers(None) == 17  # --maxprocesses 4 in pyproject.toml caps it


def test_files_start_costliest_first_and_keep_their_tests_order():
    ids = ["tests/a.py::x", "tests/a.py::y", "tests/b.py::z", "tests/c.py::w", "tests/d.py::v", "tests/a.py::u"]
    ordered = conftest.costliest_files_first(ids, {"tests/b.py": 9.0, "tests/a.py": 3.0})
    assert ordered == ["tests/b.py::z", "tests/a.py::x", "tests/a.py::y", "tests/a.py::u", "tests/c.py::w",
                       "tests/d.py::v"]  # fmt: skip
    # the recorded costs name files that exist
    costs = json.loads(conftest.FILE_COSTS.read_text())
    assert costs and all((conftest.FILE_COSTS.parent.parent / name).exists() for name in costs)

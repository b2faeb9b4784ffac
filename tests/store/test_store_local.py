"""What only the local folder backend has to show: files, temporary files, folders."""

from __future__ import annotations

from pathlib import Path

from vton.store import LocalStore


def test_objects_are_files_under_the_root_and_no_temporary_file_stays(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("users/u1/vton-cache/person.json", b"{}")
    assert (tmp_path / "users/u1/vton-cache/person.json").read_bytes() == b"{}"
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["person.json"]


def test_temporary_files_are_not_listed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("users/u1/a", b".")
    (tmp_path / "users/u1/.tmp-crashed").write_bytes(b"half")
    assert list(store.list("users/")) == ["users/u1/a"]


def test_delete_prefix_removes_emptied_folders_only(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("users/u1/upper/a", b".")
    store.put("users/u1/lower/a", b".")
    store.delete_prefix("users/u1/upper/")
    assert not (tmp_path / "users/u1/upper").exists()
    assert (tmp_path / "users/u1/lower/a").exists()

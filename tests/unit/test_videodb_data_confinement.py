"""VideoDB's data directory confines every recorded file it serves or deletes: a name from a tampered state.json
or a symlinked folder that resolves outside the directory is neither read nor deleted."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulators.videodb.persistence import DataDirectory


@pytest.fixture
def data(tmp_path: Path) -> DataDirectory:
    directory = DataDirectory(str(tmp_path / "data"), snapshot=dict)
    directory.open()
    (tmp_path / "data" / "rts-1").mkdir()
    (tmp_path / "data" / "rts-1" / "0-00001.ts").write_bytes(b"segment")
    return directory


def test_a_recorded_name_inside_the_stream_folder_resolves(data: DataDirectory) -> None:
    path = data.recorded_file("rts-1", "0-00001.ts")
    assert path is not None and path.read_bytes() == b"segment"


@pytest.mark.parametrize("name", ["../../outside.ts", "/etc/hostname", "../../data-elsewhere/x.ts", ".."])
def test_a_name_that_climbs_out_of_the_data_directory_is_refused(data: DataDirectory, name: str) -> None:
    assert data.recorded_file("rts-1", name) is None


def test_a_symlink_pointing_outside_is_refused_and_never_deleted(data: DataDirectory, tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    assert data.path is not None
    (data.path / "rts-1" / "link.ts").symlink_to(precious)
    (data.path / "rts-2").symlink_to(tmp_path)  # a whole stream folder that is a link out
    assert data.recorded_file("rts-1", "link.ts") is None
    assert data.recorded_file("rts-2", "precious.txt") is None
    data.unlink("rts-1", ["link.ts", "../../precious.txt"])
    data.unlink("rts-2", ["precious.txt"])
    assert precious.read_text() == "keep me"

"""--download against a loopback HTTP server serving a zip built here: never the network."""

import http.server
import io
import socket
import threading
import zipfile

import numpy as np
import pytest
import scipy.io
from PIL import Image
from synthetic_ccp import CLASS_NAMES, write_ccp_layout

from helpers.download import download_dataset
from helpers.errors import ClothVisionError, run_cli
from inference.image_tags import photo_tags
from preprocess import main

TOP = "clothing-co-parsing-master"


def repository_zip(tmp_path, annotated=4, unannotated=2) -> bytes:
    """A zip shaped like GitHub's archive of the CCP repository: photos with pixel-level labels, photos with
    image-level tags only, and a photo with neither."""
    source = write_ccp_layout(tmp_path / "source", count=annotated + unannotated + 1)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{TOP}/README.md", "Clothing Co-Parsing")
        archive.write(source / "label_list.mat", f"{TOP}/label_list.mat")
        for index in range(1, annotated + unannotated + 2):
            image_id = f"{index:04d}"
            archive.write(source / "photos" / f"{image_id}.jpg", f"{TOP}/photos/{image_id}.jpg")
            if index <= annotated:
                archive.write(source / "annotations" / "pixel-level" / f"{image_id}.mat",
                              f"{TOP}/annotations/pixel-level/{image_id}.mat")
            elif index <= annotated + unannotated:
                tags = io.BytesIO()
                scipy.io.savemat(tags, {"tags": np.array([[0, index]], dtype=np.uint8)})
                archive.writestr(f"{TOP}/annotations/image-level/{image_id}.mat", tags.getvalue())
    return buffer.getvalue()


@pytest.fixture
def serve():
    """serve(body, status) -> URL of a loopback server answering every GET with body."""
    servers = []

    def start(body: bytes, status: int = 200) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/archive/refs/heads/master.zip"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_download_keeps_the_annotated_photos_and_preprocess_uses_the_pixel_level_ones(tmp_path, serve, capsys):
    url = serve(repository_zip(tmp_path))
    data_dir, cache_dir = tmp_path / "data", tmp_path / "cache"
    data_dir.mkdir()
    (data_dir / "README.md").write_text("how to get the data")
    argv = ["--download", "--url", url, "--data", str(data_dir), "--out", str(cache_dir),
            "--size", "20", "14", "--workers", "1"]
    assert run_cli(main, argv) == 0
    kept = sorted(path.name for path in data_dir.iterdir())
    assert kept == ["README.md", "annotations", "label_list.mat", "photos"]
    photos = sorted(path.name for path in (data_dir / "photos").iterdir())
    # 0007 has no annotation of either kind and is left out.
    assert photos == ["0001.jpg", "0002.jpg", "0003.jpg", "0004.jpg", "0005.jpg", "0006.jpg"]
    assert sorted(path.name for path in (data_dir / "annotations").iterdir()) == ["image-level", "pixel-level"]
    assert len(list((data_dir / "annotations" / "pixel-level").iterdir())) == 4
    assert sorted(path.name for path in (data_dir / "annotations" / "image-level").iterdir()) == ["0005.mat",
                                                                                                   "0006.mat"]
    assert photo_tags(data_dir / "photos" / "0006.jpg") == {CLASS_NAMES[0], CLASS_NAMES[6]}
    source = tmp_path / "source"
    assert (data_dir / "photos" / "0003.jpg").read_bytes() == (source / "photos" / "0003.jpg").read_bytes()
    labels = np.load(cache_dir / "labels.npy")
    assert labels.shape == (4, 20, 14)
    groundtruth = scipy.io.loadmat(source / "annotations" / "pixel-level" / "0001.mat")["groundtruth"]
    expected = np.asarray(Image.fromarray(groundtruth).resize((14, 20), Image.Resampling.NEAREST))
    np.testing.assert_array_equal(labels[0], expected)
    assert (f"downloaded 6 photos into {data_dir}: 4 with pixel-level annotations (what preprocess.py uses), 2 with "
            "image-level tags only") in capsys.readouterr().out


def test_download_is_skipped_when_the_data_is_already_there(tmp_path, capsys):
    data_dir = write_ccp_layout(tmp_path / "data", count=3)
    argv = ["--download", "--url", f"http://127.0.0.1:{closed_port()}/unused.zip", "--data", str(data_dir),
            "--out", str(tmp_path / "cache"), "--size", "20", "14", "--workers", "1"]
    assert run_cli(main, argv) == 0
    assert "already holds the dataset: skipping the download" in capsys.readouterr().out


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_server_says_where_to_get_the_data_by_hand(tmp_path, capsys):
    dead_url = f"http://127.0.0.1:{closed_port()}/master.zip"
    argv = ["--download", "--url", dead_url, "--data", str(tmp_path / "data"),
            "--out", str(tmp_path / "cache")]
    assert run_cli(main, argv) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and stderr.startswith(f"error: could not download {dead_url}")
    assert "https://github.com/bearpaw/clothing-co-parsing" in stderr and "data/README.md" in stderr
    assert list((tmp_path / "data").iterdir()) == []
    assert not (tmp_path / "cache").exists()


def test_http_error_is_a_one_line_error(tmp_path, serve):
    url = serve(b"not found", status=404)
    with pytest.raises(ClothVisionError, match="HTTP Error 404"):
        download_dataset(tmp_path / "data", url)
    assert list((tmp_path / "data").iterdir()) == []


def test_a_download_that_is_not_a_zip_leaves_nothing_behind(tmp_path, serve):
    url = serve(b"<html>rate limited</html>")
    with pytest.raises(ClothVisionError, match="not an intact zip archive"):
        download_dataset(tmp_path / "data", url)
    assert list((tmp_path / "data").iterdir()) == []


def test_a_zip_of_another_repository_is_refused(tmp_path, serve):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("other-main/README.md", "something else")
    with pytest.raises(ClothVisionError, match="no pixel-level annotations"):
        download_dataset(tmp_path / "data", serve(buffer.getvalue()))


def test_an_archive_missing_a_photo_is_refused(tmp_path, serve):
    complete = zipfile.ZipFile(io.BytesIO(repository_zip(tmp_path)))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in complete.namelist():
            if name != f"{TOP}/photos/0002.jpg":
                archive.writestr(name, complete.read(name))
    with pytest.raises(ClothVisionError, match="no photos/0002.jpg"):
        download_dataset(tmp_path / "data", serve(buffer.getvalue()))
    assert list((tmp_path / "data").iterdir()) == []


def test_partial_dataset_in_the_way_is_not_overwritten(tmp_path):
    (tmp_path / "data" / "photos").mkdir(parents=True)
    with pytest.raises(ClothVisionError, match="already holds photos but not a complete dataset"):
        download_dataset(tmp_path / "data", f"http://127.0.0.1:{closed_port()}/unused.zip")


def test_damaged_compressed_data_is_a_one_line_error(tmp_path, serve):
    complete = zipfile.ZipFile(io.BytesIO(repository_zip(tmp_path)))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in complete.namelist():
            archive.writestr(name, complete.read(name))
    damaged = bytearray(buffer.getvalue())
    member = zipfile.ZipFile(io.BytesIO(bytes(damaged))).getinfo(f"{TOP}/label_list.mat")
    data_start = member.header_offset + 30 + len(member.filename.encode())
    damaged[data_start + 4:data_start + 40] = bytes(range(36))  # inside the deflate stream
    with pytest.raises(ClothVisionError, match="not an intact zip archive"):
        download_dataset(tmp_path / "data", serve(bytes(damaged)))
    assert list((tmp_path / "data").iterdir()) == []


def test_a_bad_out_folder_is_reported_before_any_download(tmp_path, capsys):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "thesis.tex").write_text("not a cache")
    unreachable = f"http://127.0.0.1:{closed_port()}/archive.zip"
    argv = ["--download", "--url", unreachable, "--data", str(tmp_path / "data"), "--out", str(occupied)]
    assert run_cli(main, argv) == 2
    error = capsys.readouterr().err
    assert "is a non-empty folder that is not a preprocess.py cache" in error
    assert "could not download" not in error

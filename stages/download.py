"""Stage `download`: fetch the four MNIST IDX files into data/raw, verified by sha256.

Sources, in order: $MNIST_MIRROR (a folder or file:// URL), `data.local_mirror`, then the
HTTP mirrors of `data.mirrors`. Each may hold `<name>.gz` or `<name>`; the sha256 of the
*decompressed* file is what counts, since re-compressed copies differ byte for byte. The
expected sums are in data/mnist.sha256, in `sha256sum` format.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import sys
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

from tqdm import tqdm

from mnist_budget.base.atomic_files import write_all
from mnist_budget.base.errors import StageError
from mnist_budget.base.layout import CHECKSUMS, RAW_DIR
from mnist_budget.base.mnist import MNIST_FILES
from mnist_budget.config.params import REQUIRED, Key, ParamsError, load_params, read_section
from stages.cli import stage_main

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 16
TIMEOUT_S = 30
DATA_KEYS = {"mirrors": Key(list, REQUIRED), "local_mirror": Key(str, "")}
SHA256_LINE = re.compile(r"^([0-9a-f]{64}) [ *](\S+)$")  # as `sha256sum` writes it


class DownloadError(StageError):
    pass


def read_checksums(path: Path = CHECKSUMS) -> dict[str, str]:
    """File name -> expected sha256 of its decompressed content, for the four MNIST files."""
    sums = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = SHA256_LINE.match(line)
        if not match:
            raise DownloadError(f"{path}: line {number}: expected `<64 hex digits>  <file name>`")
        sums[match.group(2)] = match.group(1)
    missing = [name for name in MNIST_FILES.values() if name not in sums]
    if missing:
        raise DownloadError(f"{path}: no sha256 for {', '.join(missing)}")
    return sums


def mirror_list(data: dict) -> list[str]:
    local = [m for m in (os.environ.get("MNIST_MIRROR", ""), data["local_mirror"]) if m]
    return local + [str(m) for m in data["mirrors"]]


def _read_source(location: str, label: str) -> bytes:
    """Bytes of a local path, file:// URL or http(s):// URL, with a progress bar."""
    if location.startswith(("http://", "https://")):
        with urllib.request.urlopen(location, timeout=TIMEOUT_S) as response:
            size = int(response.headers.get("Content-Length") or 0) or None
            chunks = []
            with tqdm(total=size, unit="B", unit_scale=True, desc=label, leave=False, disable=None) as bar:
                while chunk := response.read(CHUNK):
                    chunks.append(chunk)
                    bar.update(len(chunk))
            return b"".join(chunks)
    if location.startswith("file://"):
        location = urllib.parse.unquote(urllib.parse.urlparse(location).path)
    return Path(location).read_bytes()


def fetch_verified(mirror: str, name: str, sha256: str) -> bytes:
    """The decompressed, verified content of `name` from one mirror; raise OSError why not."""
    reasons = []
    for candidate in (f"{name}.gz", name):
        location = mirror.rstrip("/") + "/" + candidate
        try:
            data = _read_source(location, candidate)
            if data[:2] == GZIP_MAGIC:
                data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            reasons.append(f"{candidate}: {error}")
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            reasons.append(f"{candidate}: sha256 {digest[:12]}... is not the expected {sha256[:12]}...")
            continue
        return data
    raise OSError("; ".join(reasons))


def download(name: str, sha256: str, mirrors: list[str]) -> bytes:
    tried = []
    for mirror in mirrors:
        try:
            return fetch_verified(mirror, name, sha256)
        except OSError as error:
            tried.append(f"  {mirror}: {error}")
    raise DownloadError(
        f"could not get {name} from any mirror:\n" + "\n".join(tried) + "\n"
        "Set MNIST_MIRROR=/path/to/folder holding the four MNIST *-ubyte(.gz) files to work offline."
    )


@stage_main
def main() -> None:
    data = read_section(load_params().get("data"), DATA_KEYS, "data")
    sums = read_checksums()
    mirrors = mirror_list(data)
    if not mirrors:
        raise ParamsError("data.mirrors: no mirror given and MNIST_MIRROR is not set")
    # all four verified before any is replaced: a failed download keeps the last good data/raw
    files = {
        RAW_DIR / name: download(name, sums[name], mirrors)
        # disable=None: bars on a terminal only; a log gets the line below, not bar fragments
        for name in tqdm(MNIST_FILES.values(), desc="download", unit="file", disable=None)
    }
    write_all(files, folders=(RAW_DIR,))
    print(f"download: {len(MNIST_FILES)} files verified by sha256 in {RAW_DIR}/", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Container images without a registry: docker-archives of one layer holding a static busybox.

The ``local`` provider's machines import them into their own containerd (``ctr images import``), so a pod
sandbox ("pause") and a workload image exist on a machine that may reach no registry. Pods use them with
``imagePullPolicy: Never``. The archives are deterministic (fixed timestamps and owners), so the same busybox
always gives the same image id.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

#: The sandbox image: its entrypoint sleeps forever, which is all a pause container does.
PAUSE_IMAGE = "localhost/pause:1"
#: A small workload image: busybox's applets on PATH, /bin/sh by default.
BUSYBOX_IMAGE = "localhost/busybox:1"

_IMAGES: dict[str, tuple[str, list[str] | None, list[str] | None]] = {
    "pause.tar": (PAUSE_IMAGE, ["/bin/sleep", "2147483647"], None),
    "busybox.tar": (BUSYBOX_IMAGE, None, ["/bin/sh"]),
}
_EPOCH = 1767225600  # 2026-01-01T00:00:00Z: every file in the archives carries it


class ImageError(RuntimeError):
    """The images cannot be built here (no static busybox)."""


def find_busybox() -> Path:
    """A statically linked busybox (Debian's busybox-static installs it as /bin/busybox)."""
    found = shutil.which("busybox")
    if found is None:
        raise ImageError("no busybox on PATH: install a static busybox (Debian: apt-get install busybox-static)")
    return Path(found).resolve()


def build_images(directory: Path, busybox: Path | None = None) -> list[Path]:
    """Write the pause and busybox archives into ``directory`` (skipping those already there) and return
    their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for filename, (ref, entrypoint, cmd) in _IMAGES.items():
        path = directory / filename
        if not path.exists():
            busybox = busybox or find_busybox()
            temporary = path.with_name(f".{filename}.{os.getpid()}")
            temporary.write_bytes(docker_archive(ref, busybox, entrypoint=entrypoint, cmd=cmd))
            temporary.replace(path)
        paths.append(path)
    return paths


def docker_archive(
    ref: str, busybox: Path, *, entrypoint: list[str] | None = None, cmd: list[str] | None = None
) -> bytes:
    """A docker-archive (``docker save`` format: config, one layer, manifest) tagged ``ref``, whose layer holds
    ``busybox`` as /bin/busybox with a symlink per applet, and a minimal /etc."""
    layer = _busybox_layer(busybox)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": _architecture(),
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/bin"], "Entrypoint": entrypoint, "Cmd": cmd, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "kube-node (busybox)"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [ref], "Layers": ["layer.tar"]}]).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in ((config_name, config_bytes), ("layer.tar", layer), ("manifest.json", manifest)):
            _add_file(archive, name, data, 0o644)
    return out.getvalue()


def _busybox_layer(busybox: Path) -> bytes:
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout.split()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for directory in ("bin", "dev", "etc", "proc", "root", "sys", "tmp", "var"):
            info = _info(directory, 0o1777 if directory == "tmp" else 0o755)
            info.type = tarfile.DIRTYPE
            layer.addfile(info)
        _add_file(layer, "bin/busybox", busybox.read_bytes(), 0o755)
        for applet in sorted(set(applets) - {"busybox"}):
            info = _info(f"bin/{applet}", 0o777)
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            layer.addfile(info)
        _add_file(layer, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n", 0o644)
        _add_file(layer, "etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644)
    return out.getvalue()


def _info(name: str, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = mode
    info.mtime = _EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _add_file(archive: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = _info(name, mode)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def _architecture() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)

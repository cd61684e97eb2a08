"""Mounting and unmounting: store settings, model compatibility, daemonising, clean unmount."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .store import Store

log = logging.getLogger(__name__)

READY_TIMEOUT = 300.0


class MountError(RuntimeError):
    pass


# stores made before sdfs recorded each new store's rate were made at 5 bits when none was given
UNRECORDED_BITS = 5


def open_codec_for_store(store: Store, model: str | None, device: str, family: str | None, config: dict):
    """Load the codec a store was made with, or record this one for a new store.

    A store remembers its latent family; a model of another family is refused. ``config`` may
    carry ``quality_floor``: the default for a new store, a change for an existing one.
    """
    from .codec import DEFAULT_MODEL, Codec, CodecConfig, load_model
    from .guard import DEFAULT_FLOOR, QualityFloor

    config = dict(config)
    floor = config.pop("quality_floor", None)
    if floor is not None:
        floor = str(QualityFloor.parse(floor) or "off")
    settings = store.settings
    chosen = model or settings.get("model") or DEFAULT_MODEL
    latent_model = load_model(chosen, device=device, family=family)
    if settings.get("family") and settings["family"] != latent_model.family.name:
        raise MountError(f"{store.path} holds {settings['family']} latents (made with {settings.get('model')}); "
                         f"{chosen} reads {latent_model.family.name} latents and cannot decode them")
    if settings.get("family"):
        codec_settings = _recorded_rate(settings.get("codec", {}))
        if floor is not None and floor != settings.get("quality_floor", "off"):
            log.info("%s: quality floor %s from now on (was %s)", store.path, floor,
                     settings.get("quality_floor", "off"))
            store.update_settings({"quality_floor": floor})
    else:
        codec_settings = _new_store_rate({k: v for k, v in config.items() if v is not None}, latent_model.family.name)
        store.update_settings({"family": latent_model.family.name, "model": chosen, "codec": codec_settings,
                               "quality_floor": floor or DEFAULT_FLOOR})
    return Codec(latent_model, CodecConfig(**codec_settings))


def _has_rate(codec_settings: dict) -> bool:
    return "bits" in codec_settings or "levels" in codec_settings


def _recorded_rate(codec_settings: dict) -> dict:
    return codec_settings if _has_rate(codec_settings) else {**codec_settings, "bits": UNRECORDED_BITS}


def _new_store_rate(codec_settings: dict, family: str) -> dict:
    """A new store records its rate, so that it keeps it whatever later versions default to."""
    from .codec import Codec, CodecConfig

    if _has_rate(codec_settings):
        return codec_settings
    return {**codec_settings, "levels": Codec.levels_for(family, CodecConfig())}


def guard_for_store(store: Store):
    """The store's quality guard (stores made before the guard existed have none: latents only)."""
    from .guard import QualityFloor, QualityGuard

    return QualityGuard(QualityFloor.parse(store.settings.get("quality_floor", "off")))


def serve(store_path: str, mountpoint: str, model: str | None, device: str, family: str | None, cache_size: int,
          keep_originals: bool, readonly: bool, allow_other: bool, codec_config: dict) -> None:
    """Run the daemon in this process until the mount goes away."""
    from .fs import mount
    from .service import Service

    mp = Path(mountpoint).absolute()
    if not mp.is_dir():
        raise MountError(f"mount point {mountpoint} is not a directory")
    store = Store(store_path, create=True)
    service = None
    try:
        codec = open_codec_for_store(store, model, device, family, codec_config)
        orphans = store.purge_orphans()
        if orphans:
            log.info("removed %d unlinked files left by an earlier crash", orphans)
        service = Service(store, codec, guard_for_store(store), cache_size=cache_size,
                          keep_originals=keep_originals)
        if not readonly:
            service.start()
        log.info("serving %s at %s (model %s, quality floor %s, %d files queued for encoding)", store_path,
                 mountpoint, codec.model.model_id, service.guard.floor or "off", store.queue_length())
        mount(store, service, mp, foreground=True, readonly=readonly, allow_other=allow_other)
        log.info("unmounted %s; %d files still queued for encoding", mountpoint, store.queue_length())
    finally:
        if service is not None:
            service.stop()
        store.close()


def daemonise(argv: list[str], store_path: str, mountpoint: str, log_file: Path) -> int:
    """Start ``sdfs mount -f`` in the background and return once the mount is usable."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        child = subprocess.Popen([sys.executable, "-m", "sdfs.cli", *argv, "--foreground"], stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if os.path.ismount(mountpoint):
            print(f"sdfs: mounted {store_path} at {mountpoint} (pid {child.pid}, log {log_file})", file=sys.stderr)
            return 0
        if child.poll() is not None:
            tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
            print("sdfs: mount failed: " + (" | ".join(tail) or f"exit status {child.returncode}"), file=sys.stderr)
            return 1
        time.sleep(0.1)
    child.terminate()
    print(f"sdfs: mount of {store_path} did not become ready in {READY_TIMEOUT:.0f} s; see {log_file}",
          file=sys.stderr)
    return 1


def unmount(mountpoint: str, timeout: float = 120.0) -> None:
    """Unmount cleanly and wait for the daemon to finish; recover a mount whose daemon died."""
    pid = _daemon_pid(mountpoint)
    fusermount = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount3"
    result = subprocess.run([fusermount, "-u", mountpoint], capture_output=True, text=True)
    if result.returncode != 0:
        message = result.stderr.strip()
        if "not connected" in message or not _is_alive(pid):
            lazy = subprocess.run([fusermount, "-uz", mountpoint], capture_output=True, text=True)
            if lazy.returncode != 0:
                raise MountError(f"cannot unmount {mountpoint}: {lazy.stderr.strip() or message}")
        else:
            raise MountError(f"cannot unmount {mountpoint}: {message}")
    deadline = time.monotonic() + timeout
    while pid and _is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid and _is_alive(pid):
        raise MountError(f"unmounted {mountpoint}, but daemon pid {pid} is still finishing after {timeout:.0f} s")


def _daemon_pid(mountpoint: str) -> int | None:
    try:
        return int(os.getxattr(mountpoint, "user.sdfs.pid"))
    except OSError:
        return None


def _is_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    try:  # a zombie of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


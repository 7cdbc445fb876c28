"""Checkpoints of the JAX backend: orbax's CheckpointManager, in lab/checkpoint.py's layout and
with its guarantees (atomic, checksummed, fallback past a damaged newest one).

Layout: <run>/checkpoints/step_00000120/, the torch path's names, holding orbax's Composite
items ``state`` (the pytree {"params", "opt_state"}: StandardSave, TensorStore's OCDBT/zarr
files) and ``loop`` (the loop's JSON dict), orbax's own small files, and ``lab_sha256.json``.
The final checkpoint also gets the torch-named ``model.safetensors`` and ``meta.json``
(write_weights), so lab.checkpoint.verify, lab.run_model and lab.export read a JAX run's final
weights as a torch run's. Snapshots are lab.checkpoint's own format (save_snapshot).

Orbax saves atomically: into ``step_00000120.orbax-checkpoint-tmp``, renamed into place once
complete, so a killed save leaves only a directory that no listing here takes for a checkpoint.
It keeps no checksum of the array data, though: a flipped bit in a data file restores
silently as a wrong weight (a truncated one raises). Hence ``lab_sha256.json``: the sha256 of
every file of the items, written inside the temporary directory after orbax has finished it
and before it renames it (AsyncOptions.post_finalization_callback), every file fsynced on the
way (orbax fsyncs none of its JSON files). Every finalized checkpoint has one; a checkpoint
whose files do not match it is skipped with a message, as lab.checkpoint.load_latest does.

Multi-process: orbax's saves and restores are collective (barriers inside), so every JAX
process constructs the CheckpointStore and calls save/wait/restore_latest/close, each with its
own shards; orbax's primary process (0) renames, seals and prunes. copy_step, write_weights and
save_snapshot are plain file writes for process 0 alone, as lab.checkpoint's writers are.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Self

import jax
import numpy as np
import orbax.checkpoint as ocp

from common.files import checksum_problem, fsync_path, sha256_file
from lab import checkpoint as torch_checkpoint
from lab.checkpoint import STEP_PREFIX

ITEMS = ("state", "loop")  # the Composite's item names: subdirectories of a step directory
MANIFEST = "lab_sha256.json"
# orbax's name for a step's directory while it is written: the final name plus this suffix
# (orbax.checkpoint._src.path.atomicity_types.TMP_DIR_SUFFIX, private there).
ORBAX_TMP_SUFFIX = ".orbax-checkpoint-tmp"
_STEP_NAME = re.compile(rf"^{STEP_PREFIX}(\d{{8,}})$")  # orbax's fixed length 8 grows past 99999999


def step_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"{STEP_PREFIX}{step:08d}"


def list_steps(run_dir: Path) -> list[int]:
    """The steps of run_dir's finalized checkpoints (intact or not), oldest first. Read from the
    directory alone, without a CheckpointManager: safe on another run's directory (a trunk)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(int(m.group(1)) for p in root.iterdir() if p.is_dir() and (m := _STEP_NAME.match(p.name)))


def verify_step(path: Path) -> str | None:
    """None if the orbax checkpoint at path matches its lab_sha256.json, else the reason."""
    try:
        digests = json.loads((Path(path) / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"{MANIFEST} unreadable ({e.__class__.__name__})"
    for item in ITEMS:  # a manifest of nothing would vouch for anything
        if not any(name.startswith(f"{item}/") for name in digests):
            return f"{MANIFEST} lists no file of {item}"
    return checksum_problem(Path(path), digests)


def has_checkpoint(run_dir: Path, step: int | None = None) -> bool:
    """Whether run_dir holds any finalized checkpoint, or an intact one at `step` (as
    TorchBackend.has_checkpoint: the latter is what a branch adopts)."""
    if step is None:
        return bool(list_steps(run_dir))
    path = step_dir(run_dir, step)
    return path.is_dir() and verify_step(path) is None


@dataclasses.dataclass(frozen=True)
class KeepNewest:
    """orbax PreservationPolicy with lab.checkpoint.save's rule: the newest `keep` checkpoints
    whose steps are not in `kept`, and every one that is (a trunk's branch points, neither
    pruned nor counted among the newest). orbax's own LatestN | CustomSteps counts the kept ones
    among the newest. keep=0 prunes nothing, as lab.checkpoint.save's slice does."""
    keep: int
    kept: frozenset

    def should_preserve(self, checkpoints: Sequence, *, context=None) -> list[bool]:
        rolling = sorted(info.step for info in checkpoints if info.step not in self.kept)
        pruned = set(rolling[:-self.keep]) if self.keep > 0 else set()
        return [info.step not in pruned for info in checkpoints]


class CheckpointStore:
    """One run's checkpoints: asynchronous orbax saves, pruning, restore with fallback.

    Construct it in the run's owner only (the process group holding lab.runs.run_lock): it
    deletes what killed saves left behind. To look at another run's checkpoints (a trunk's),
    use has_checkpoint and copy_step, which read the directory without a manager.
    """

    def __init__(self, run_dir: Path, keep: int, keep_steps: Iterable[int] = ()):
        self.run_dir = Path(run_dir)
        self.root = self.run_dir / "checkpoints"
        self._sealing: Path | None = None  # the temporary directory of the save in flight
        self._closed = False
        if jax.process_index() == 0:
            self._remove_partial_writes()
        options = ocp.CheckpointManagerOptions(
            step_prefix=STEP_PREFIX.rstrip("_"), step_format_fixed_length=8,
            preservation_policy=KeepNewest(keep, frozenset(keep_steps)),
            enable_async_checkpointing=True,
            async_options=ocp.AsyncOptions(post_finalization_callback=self._seal))
        self._manager = ocp.CheckpointManager(self.root, options=options)

    def _remove_partial_writes(self) -> None:
        """orbax's temporary directories of killed saves and copy_step's staging copies. Here,
        synchronously: orbax's cleanup_tmp_directories option does it in a background thread."""
        if not self.root.is_dir():
            return
        for path in sorted(self.root.iterdir()):
            if ORBAX_TMP_SUFFIX in path.name or path.name.startswith(".tmp-"):
                shutil.rmtree(path, ignore_errors=True)

    def step_dir(self, step: int) -> Path:
        return step_dir(self.run_dir, step)

    def save(self, step: int, state, loop_state: dict) -> None:
        """Start saving `state` (a pytree of jax arrays) and the loop's JSON dict as `step`;
        returns once the arrays are copied off the device (the caller may donate them), while
        the files are written in the background. wait() blocks until they are on disk.

        Checkpoints at or past `step` go first, as in lab.checkpoint.save: a resume fell back
        past them (damaged) or they are an abandoned timeline's, and counting them among the
        `keep` newest would prune the one being written. Older ones are pruned by orbax once
        this one is finalized (KeepNewest), never before."""
        self._manager.wait_until_finished()  # the previous save's finalization and pruning
        self._manager.reload()  # the directory may have changed under it (copy_step, a restore's fallback)
        for old in self._manager.all_steps():
            if old >= step:
                self._manager.delete(old)
        self._sealing = self.root / f"{self.step_dir(step).name}{ORBAX_TMP_SUFFIX}"
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), loop=ocp.args.JsonSave(dict(loop_state)))
        if not self._manager.save(step, args=args, force=True):  # force: no save-interval policy may skip it
            raise RuntimeError(f"orbax declined to save step {step}")

    def _seal(self) -> None:
        """orbax's post-finalization callback: in its background thread, on process 0 only,
        after every process's files are written and before the rename. fsync every file of the
        items and write their sha256 to lab_sha256.json. Raising here fails the save: orbax
        then neither renames the directory nor prunes older checkpoints."""
        tmp = self._sealing
        if tmp is None or not tmp.is_dir():
            raise RuntimeError(f"the checkpoint being saved is not at {tmp}: orbax's temporary naming changed")
        digests, dirs = {}, [tmp]
        for item in ITEMS:
            for path in sorted((tmp / item).rglob("*")):
                if path.is_dir():
                    dirs.append(path)
                elif path.is_file():
                    fsync_path(path)
                    digests[path.relative_to(tmp).as_posix()] = sha256_file(path)
            dirs.append(tmp / item)
        staging = tmp / f".{MANIFEST}.tmp"
        staging.write_text(json.dumps({"files": digests}, indent=1))
        fsync_path(staging)
        os.replace(staging, tmp / MANIFEST)
        for directory in dirs:
            fsync_path(directory)

    def wait(self) -> None:
        """Block until the save in flight is finalized (renamed into place) and older
        checkpoints are pruned; raises what the background save raised."""
        self._manager.wait_until_finished()
        if jax.process_index() == 0 and self.root.is_dir():
            fsync_path(self.root)  # the rename itself (orbax does not fsync the parent)

    def restore_latest(self, abstract_state, log=lambda msg: print(msg, file=sys.stderr)):
        """(step, state, loop_state) of the newest intact checkpoint, or None when there is none.

        abstract_state: the pytree save() was given, as jax.ShapeDtypeStructs (jax.eval_shape),
        with shardings where the arrays should land; the state comes back with its exact tree
        (optax's NamedTuples, nnx.State), not as nested dicts. A checkpoint whose files do not
        match its checksums is skipped with one message, falling back to the previous one. One
        that matches but does not restore raises: that is a mismatch of the target (another
        model or optimizer), which falling back would turn into silently training from scratch.
        Shapes and dtypes must match exactly (orbax itself would cast another dtype silently).
        """
        self._manager.wait_until_finished()
        self._manager.reload()
        for step in reversed(self._manager.all_steps()):
            path = self.step_dir(step)
            if (problem := verify_step(path)) is not None:
                log(f"checkpoint {path} is corrupt ({problem}); falling back to the previous one")
                continue
            if (misfit := _misfit(path, abstract_state)) is not None:
                raise ValueError(f"checkpoint {path} does not fit this run's state: {misfit}")
            args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), loop=ocp.args.JsonRestore())
            restored = self._manager.restore(step, args=args)
            return step, restored["state"], dict(restored["loop"])
        return None

    def has(self, step: int | None = None) -> bool:
        """Any finalized checkpoint, or an intact one at `step` (has_checkpoint on this run)."""
        return has_checkpoint(self.run_dir, step)

    @staticmethod
    def exists(run_dir: Path, step: int | None = None) -> bool:
        """has() without a store: for another run's directory (a trunk), which a store would clean."""
        return has_checkpoint(run_dir, step)

    def close(self) -> None:
        """Wait for the save in flight, then release orbax's threads."""
        if self._closed:
            return
        self._closed = True
        try:
            self.wait()
        finally:
            self._manager.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _misfit(path: Path, abstract_state) -> str | None:
    """The first array where the checkpoint's `state` and the target differ in presence, shape or
    dtype; None when they fit. Checked from orbax's metadata before restoring: orbax would cast
    a dtype silently, and a shape error from inside its reads names no array."""
    def arrays(tree) -> dict:
        return {".".join(map(str, key)): value for key, value in ocp.tree.to_flat_dict(tree).items()
                if hasattr(value, "shape")}

    stored = arrays(ocp.StandardCheckpointHandler().metadata(Path(path) / "state").tree)
    wanted = arrays(ocp.tree.serialize_tree(abstract_state, keep_empty_nodes=True))
    for name in sorted(set(stored) | set(wanted)):
        if name not in stored or name not in wanted:
            return f"{name} is only in the {'target' if name in wanted else 'checkpoint'}"
        there, here = (f"{np.dtype(x.dtype).name}{list(x.shape)}" for x in (stored[name], wanted[name]))
        if there != here:
            return f"{name} is {there} there, {here} here"
    return None


def copy_step(trunk_dir: Path, step: int, run_dir: Path) -> bool:
    """Copy the trunk run's intact checkpoint at `step` into run_dir's checkpoints: copied under
    a hidden temporary name in the same directory, fsynced, then renamed (the adoption is
    complete exactly when the rename is). False when the trunk has no intact checkpoint there.
    Process 0 only; the other processes wait at the caller's barrier."""
    source = step_dir(trunk_dir, step)
    if not source.is_dir() or verify_step(source) is not None:
        return False
    final = step_dir(run_dir, step)
    staging = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, staging)
    for directory, _, files in os.walk(staging, topdown=False):
        for name in files:
            fsync_path(Path(directory) / name)
        fsync_path(Path(directory))
    if final.exists():  # a rerun after a kill between this rename and the caller's record of it
        shutil.rmtree(final)
    os.rename(staging, final)
    fsync_path(final.parent)
    return True


def write_weights(step_dir: Path, tensors: dict[str, np.ndarray], meta: dict) -> Path:
    """Put the torch-named weights (lab.jax.weights.to_torch_state_dict) into a finalized orbax
    step directory as model.safetensors plus meta.json ({**meta, "sha256": ...}; meta carries
    "step"), so lab.checkpoint.verify passes and lab.run_model loads it as a torch checkpoint.
    For the final checkpoint, after wait(). meta.json is written last and atomically: a kill
    midway leaves a directory verify() rejects (the run is then not finished), never a wrong one.
    The orbax state beside it is untouched (lab_sha256.json lists only the items' files)."""
    if "step" not in meta:
        raise ValueError("meta must carry the step (lab.run_model reads meta.json's step)")
    step_dir = Path(step_dir)
    if not step_dir.is_dir():
        raise FileNotFoundError(f"{step_dir} is not a finalized checkpoint (wait() for the save first)")
    torch_checkpoint.write_weight_files(step_dir, tensors, None, meta)
    return step_dir


def save_snapshot(run_dir: Path, name: str, step: int, tokens: int, tensors: dict[str, np.ndarray]) -> Path:
    """lab.checkpoint.save_snapshot from torch-named arrays: the same directory, written the same
    way (a whole new directory renamed into place)."""
    return torch_checkpoint.write_atomically(Path(run_dir) / "snapshots" / name, tensors, None,
                                             {"step": step, "tokens": tokens})

"""Where files live: a base directory in ComfyUI's layout, plus extra_model_paths.yaml.

Layout under the base dir: models/<kind>/, input/, output/, temp/. A name given by a workflow
is always relative to one of a kind's folders: no `..`, no absolute paths.

Links, as ComfyUI treats them (DECISIONS.md "Files, links and older workflows"):
- Reading: a file or folder the user linked into a model/input folder is part of that folder,
  wherever the link points (shared model stores). Listings follow links; a link loop is
  listed once, a dangling link not at all.
- Writing (output/, temp/, datasets/): never through a link that leads out of the folder
  (`comfyless.files.check_write_target`), so a save can only ever create files under the
  folder itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..files import UnsafePath, check_relative_name
from ..typesys.errors import InvalidValue, WorkflowError

ENV_BASE_DIR = "COMFYLESS_BASE_DIR"
DEFAULT_BASE_DIR = "comfyless-data"

MODEL_EXTENSIONS = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")

# kind -> folder names under models/ (first is where new files go). ComfyUI renamed "unet"
# to "diffusion_models" and "clip" to "text_encoders" but still reads both.
MODEL_KINDS: dict[str, tuple[str, ...]] = {
    "checkpoints": ("checkpoints",),
    "loras": ("loras",),
    "vae": ("vae",),
    "diffusion_models": ("diffusion_models", "unet"),
    "text_encoders": ("text_encoders", "clip"),
    "embeddings": ("embeddings",),
    "controlnet": ("controlnet", "t2i_adapter"),  # ComfyUI lists both for ControlNetLoader
    "upscale_models": ("upscale_models",),
}
KIND_ALIASES = {"unet": "diffusion_models", "clip": "text_encoders"}
# Folder kinds nodes write new files to (each a folder of that name in the base dir).
WRITTEN_KINDS = ("output", "temp", "datasets")


@dataclass
class BasePaths:
    """The folders of one base directory, and extra model folders from YAML files."""

    base: Path
    extra: dict[str, list[Path]] = field(default_factory=dict)
    # Ranks other than 0 of a torchrun run (comfyless/distributed.py): new files go under this
    # folder's output/, temp/, datasets/ instead (dropped after the run), so only rank 0 writes
    # into the base dir; reads still see the base dir's folders, after the rank's own.
    write_base: Path | None = None

    @classmethod
    def resolve(cls, base_dir: str | os.PathLike | None = None) -> BasePaths:
        """--base-dir, else $COMFYLESS_BASE_DIR, else ./comfyless-data; reads extra_model_paths."""
        chosen = base_dir or os.environ.get(ENV_BASE_DIR) or DEFAULT_BASE_DIR
        paths = cls(Path(chosen).expanduser().resolve())
        yaml_file = paths.base / "extra_model_paths.yaml"
        if yaml_file.is_file():
            paths.extra = read_extra_model_paths(yaml_file)
        return paths

    @property
    def input_dir(self) -> Path:
        return self.base / "input"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    @property
    def temp_dir(self) -> Path:
        return self.base / "temp"

    @property
    def custom_nodes_dir(self) -> Path:
        """ComfyUI-style custom node packs (engine/plugins.py), loaded only if it exists."""
        return self.base / "custom_nodes"

    def folders(self, kind: str) -> list[Path]:
        """Every folder files of `kind` are looked up in, in priority order."""
        kind = KIND_ALIASES.get(kind, kind)
        if kind == "input":
            return [self.input_dir]
        if kind in WRITTEN_KINDS:  # datasets: SaveTrainingDataset / LoadTrainingDataset shards
            return self._written(kind)
        if kind not in MODEL_KINDS:
            raise KeyError(f"unknown folder kind {kind!r}")
        found = [self.base / "models" / name for name in MODEL_KINDS[kind]]
        found += self.extra.get(kind, [])
        if kind == "loras":  # trained LoRAs are usable at once
            found += [folder / "loras" for folder in self._written("output")]
        return found

    def _written(self, kind: str) -> list[Path]:
        """Folders of a kind nodes write to; the first is where new files go."""
        own = {"output": self.output_dir, "temp": self.temp_dir}.get(kind, self.base / kind)
        return [own] if self.write_base is None else [self.write_base / kind, own]

    def list_files(self, kind: str, extensions: tuple[str, ...] | None = None) -> list[str]:
        """Sorted, '/'-separated names of the files of `kind`, relative to their folder.

        Links are followed (a linked file or folder is listed under the link's name)."""
        if extensions is None:
            extensions = IMAGE_EXTENSIONS if kind == "input" else MODEL_EXTENSIONS
        names: set[str] = set()
        for folder in self.folders(kind):
            for rel, entry, is_dir in _walk(folder):
                if not is_dir and entry.name.lower().endswith(extensions):
                    names.add(rel)
        return sorted(names)

    def list_dirs(self, kind: str) -> list[str]:
        """Sorted, '/'-separated sub-folders (recursive, links followed) of `kind`'s folders."""
        names: set[str] = set()
        for folder in self.folders(kind):
            names.update(rel for rel, _entry, is_dir in _walk(folder) if is_dir)
        return sorted(names)

    def find(self, kind: str, name: str, *, node_id: str | None = None,
             input_name: str | None = None) -> Path:
        """The existing file or folder `name` of `kind`; clear errors for escapes and misses.

        `name` may lead through links (that is how a shared store is linked in); it may not
        be absolute or contain `..`, so it can only name what the folder's listing shows."""
        where = {"node_id": node_id, "input_name": input_name}
        try:
            check_relative_name(name, **where)
        except UnsafePath as exc:
            raise invalid_value(exc) from None
        for folder in self.folders(kind):
            candidate = folder / name
            if candidate.exists():
                return candidate
        present = self.list_files(kind) if kind != "input" else self.list_files(kind)
        shown = ", ".join(present[:20]) or "nothing"
        where_looked = ", ".join(str(f) for f in self.folders(kind))
        raise InvalidValue(
            f"{kind} file {name!r} not found in {where_looked}; present: {shown}", **where
        )


def invalid_value(exc: UnsafePath) -> InvalidValue:
    """comfyless.files' refusal as the hierarchy's error (same message, node and input)."""
    return InvalidValue(str(exc), node_id=exc.node_id, input_name=exc.input_name)


def _walk(folder: Path, rel: str = "", ancestors: frozenset = frozenset()):
    """(relative name, entry, is_dir) for everything under `folder`, links followed.

    A folder that is one of its own ancestors (a link loop) is not entered again, so a loop
    ends instead of repeating names until the OS refuses; dangling links are skipped (they
    name nothing that could be read). The same store linked twice is listed under both names.
    """
    try:
        st = folder.stat()
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    inner = ancestors | {(st.st_dev, st.st_ino)}
    for entry in entries:
        name = f"{rel}{entry.name}"
        try:
            is_dir = entry.is_dir()  # follows links
            if not is_dir and not entry.is_file():
                continue  # dangling link, socket, ...
            if is_dir:
                target = entry.stat()  # follows links
                if (target.st_dev, target.st_ino) in inner:
                    continue  # a link back to a folder above: a loop
        except OSError:
            continue
        yield name, entry, is_dir
        if is_dir:
            yield from _walk(Path(entry.path), name + "/", inner)


def read_extra_model_paths(yaml_file: Path) -> dict[str, list[Path]]:
    """ComfyUI's extra_model_paths.yaml: sections with base_path and kind: sub-folder lines."""
    import yaml  # only when the file exists

    try:
        data = yaml.safe_load(yaml_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise WorkflowError(f"cannot read {yaml_file}: {exc}") from exc
    if not isinstance(data, dict):
        raise WorkflowError(f"{yaml_file}: expected a mapping of sections")
    extra: dict[str, list[Path]] = {}
    for section, conf in data.items():
        if not isinstance(conf, dict):
            raise WorkflowError(f"{yaml_file}: section {section!r} must be a mapping")
        base = Path(os.path.expanduser(str(conf.get("base_path", yaml_file.parent))))
        if not base.is_absolute():
            base = yaml_file.parent / base
        for kind, value in conf.items():
            if kind in ("base_path", "is_default"):
                continue
            kind = KIND_ALIASES.get(kind, kind)
            for line in str(value).splitlines():
                line = line.strip()
                if line:
                    extra.setdefault(kind, []).append(base / os.path.expanduser(line))
    return extra

"""Model files: a torch.export program, loadable without this project's code, that
carries the step's params (the recipe it was trained with) as an extra file.

The archive is built in memory, then written by Python: the same model gives the same bytes
(written to a file, torch names the archive's inner folder after that file, a random temp
name); the caller writes the bytes, so a full disk is an OSError naming the path, not a C++
abort, and a training worker hands its model back as bytes."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mnist_budget.base.atomic_files import md5_of
from mnist_budget.base.errors import StageError
from mnist_budget.base.mnist import IMAGE_SHAPE

CONFIG_FILE = "config.json"


class DamagedModelFile(StageError):
    """A model file that is not a whole archive (truncated, overwritten)."""


def model_bytes(model: nn.Module, config: dict[str, Any]) -> bytes:
    """The archive of `model` exported (in eval mode, on the CPU) with a dynamic batch
    dimension. The same model gives the same bytes in any checkout and environment: the
    exported graph's stack traces (45-63 absolute paths of the installed torch per file)
    are dropped; what each node computes and its module path stay."""
    model = model.to("cpu", memory_format=torch.contiguous_format).eval()
    example = torch.zeros(2, *IMAGE_SHAPE)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    for module in program.graph_module.modules():
        for node in module.graph.nodes:
            node.meta.pop("stack_trace", None)
    archive = io.BytesIO()
    torch.export.save(program, archive, extra_files={CONFIG_FILE: json.dumps(config)})
    return archive.getvalue()


def load_model(path: Path, md5: str) -> tuple[nn.Module, dict[str, Any]]:
    """The exported model (images -> logits) and the config saved with it, loaded only if
    its bytes have the `md5` that dvc.lock records: torch.export.load unpickles, which can
    run code (`dvc_lock`'s trust boundary)."""
    if (actual := md5_of(path)) != md5:
        raise DamagedModelFile(
            f"{path}: not the bytes dvc.lock records (md5 {actual}, recorded {md5}), not loaded"
        )
    try:
        with zipfile.ZipFile(path) as archive:  # checked here: torch logs a traceback, then fails
            damaged = archive.testzip()
    except zipfile.BadZipFile as error:
        raise DamagedModelFile(f"{path}: not a model file ({error})") from None
    if damaged is not None:
        raise DamagedModelFile(f"{path}: a damaged model file ({damaged} fails its checksum)")
    extra = {CONFIG_FILE: ""}
    program = torch.export.load(path, extra_files=extra)
    return program.module(), json.loads(extra[CONFIG_FILE])

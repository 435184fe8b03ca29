"""Write a tuned model back into a GGUF file, so that llama.cpp (`--model gguf:FILE`) runs it.

Why: on a CPU the embedded llama.cpp answers several times faster than transformers in float32,
so a model tuned from a GGUF preset (`finetune --provider hf --model gguf:PRESET`) is evaluated
where it came from. llama.cpp's own converter is not a Python package; this needs none: the base
GGUF file already holds everything but the weights (architecture, hyper-parameters, tokenizer,
chat template), so its metadata is copied as is and each of its tensors is replaced by the tuned
one of the same name (gguf's own name map), 8-bit (Q8_0) for matrices whose rows allow it,
float32 for norms and biases. Only architectures the base file and gguf's map agree on can be
written; anything unmatched is an error, never a silently missing weight.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["GGUFExportError", "export_gguf"]


class GGUFExportError(RuntimeError):
    """The tuned weights cannot be written over this base file; str() says why in one line."""


def _state_dict(model: Any) -> dict[str, Any]:
    return {name: tensor.detach().float().cpu().numpy() for name, tensor in model.state_dict().items()}


def export_gguf(model: Any, base_gguf: str | Path, out: str | Path, *, name: str | None = None) -> Path:
    """Write `model`'s weights (a transformers model loaded from or tuned on `base_gguf`) into a
    new GGUF file at `out` with the base file's metadata; returns `out`. Written to a temporary
    file and renamed, so a kill never leaves a half file under that name."""
    import gguf
    import numpy as np

    base_path, out_path = Path(base_gguf), Path(out)
    reader = gguf.GGUFReader(base_path, "r")
    arch_field = reader.get_field(gguf.Keys.General.ARCHITECTURE)
    if arch_field is None:
        raise GGUFExportError(f"{base_path}: no general.architecture in the GGUF metadata")
    arch = str(arch_field.contents())
    arch_enum = next((a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch), None)
    if arch_enum is None:
        raise GGUFExportError(f"{base_path}: architecture {arch!r} is unknown to the gguf package")
    block_field = reader.get_field(f"{arch}.block_count")
    n_blocks = int(block_field.contents()) if block_field is not None else 0
    names = gguf.TensorNameMap(arch_enum, n_blocks)

    weights: dict[str, Any] = {}
    for hf_name, array in _state_dict(model).items():
        mapped = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if mapped is not None:
            weights[mapped] = array
    missing = [t.name for t in reader.tensors if t.name not in weights]
    if missing:
        raise GGUFExportError(f"{base_path}: no tuned weight for {len(missing)} tensor(s), e.g. {missing[0]}: "
                              f"the model is not the base's architecture")

    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    writer = gguf.GGUFWriter(tmp, arch, endianess=reader.endianess)
    try:
        for field in reader.fields.values():
            if field.name.startswith("GGUF.") or field.name == gguf.Keys.General.ARCHITECTURE:
                continue   # the header's own fields; the writer sets the architecture
            if field.name == gguf.Keys.General.FILE_TYPE:
                writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
                continue
            if field.name == gguf.Keys.General.NAME and name:
                writer.add_name(name)
                continue
            vtype = field.types[0]
            sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub_type)
        for tensor in reader.tensors:
            array = np.ascontiguousarray(weights[tensor.name], dtype=np.float32)
            if array.ndim == 2 and array.shape[-1] % 32 == 0:
                writer.add_tensor(tensor.name, gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0),
                                  raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            elif array.ndim == 2:
                writer.add_tensor(tensor.name, array.astype(np.float16), raw_dtype=gguf.GGMLQuantizationType.F16)
            else:
                writer.add_tensor(tensor.name, array, raw_dtype=gguf.GGMLQuantizationType.F32)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out_path

"""ISO 639-3 codes -> language names, so prompts can say "Hausa" rather than "hau".

Models translate and tag better when told the language by name; the code is what datasets use.
"""

from __future__ import annotations

from pathlib import Path

NAMES: dict[str, str] = {
    "bam": "Bambara", "bbj": "Ghomala", "ewe": "Ewe", "fon": "Fon", "hau": "Hausa",
    "ibo": "Igbo", "kin": "Kinyarwanda", "lug": "Luganda", "luo": "Dholuo", "mos": "Mossi",
    "nya": "Chichewa", "pcm": "Nigerian Pidgin", "sna": "chiShona", "swa": "Swahili",
    "tsn": "Setswana", "twi": "Twi", "wol": "Wolof", "xho": "isiXhosa", "yor": "Yoruba",
    "zul": "isiZulu", "amh": "Amharic", "eng": "English", "fra": "French",
}


def language_name(code_or_name: str | None) -> str | None:
    """The display name for a code; an unknown value is taken as already being a name."""
    if not code_or_name:
        return None
    return NAMES.get(code_or_name.lower(), code_or_name)


def guess_language(data_spec: str) -> str | None:
    """Infer the language code from `masakhaner2:hau:test` or a path like `.../hau/test.txt`."""
    if ":" in data_spec and not Path(data_spec).exists():
        parts = data_spec.split(":")
        return parts[1] if len(parts) > 1 and parts[1] else None
    for part in reversed(Path(data_spec).parts[:-1]):
        if part.lower() in NAMES:
            return part.lower()
    stem = Path(data_spec).stem.lower()
    for piece in stem.replace("-", "_").split("_"):
        if piece in NAMES:
            return piece
    return None

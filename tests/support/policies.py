"""Variants of the reference policy written for a test: another model name, another section."""

from __future__ import annotations

import re
from pathlib import Path


def write_policy(folder: Path, policy_file: Path, canary: str, model: str = "churn") -> Path:
    """A copy of the reference policy with another model name and `canary:` section."""
    text = policy_file.read_text().replace("model_name: fraud-detection", f"model_name: {model}")
    text = re.sub(r"\ncanary:\n(?:  .*\n|\s*\n)*", "\n" + canary.strip("\n") + "\n\n", text)
    path = folder / f"{model}.yaml"
    path.write_text(text)
    return path

"""Where the tests find the checkout: its root, the reference policy and the official schemas beside it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "gates" / "fraud-detection.yaml"
SCHEMAS = ROOT.parent / "shared" / "schemas"

"""Where the bundled starter model lives (a ModelScope-compatible dir shipped inside the package)."""

from pathlib import Path

STARTER_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "starter"

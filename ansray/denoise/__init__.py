"""The distributed batch denoise job: plan on the driver, read bundles, enhance on actors, stitch and write."""

from ansray.denoise.config import DenoiseConfig
from ansray.denoise.enhancer import SegmentEnhancer
from ansray.denoise.files import FilePlan, plan_file, read_segments, write_output
from ansray.denoise.manifest import ManifestRow, ManifestWriter, read_manifest_rows
from ansray.denoise.pipeline import DenoiseSummary, run_denoise

__all__ = [
    "DenoiseConfig",
    "DenoiseSummary",
    "FilePlan",
    "ManifestRow",
    "ManifestWriter",
    "SegmentEnhancer",
    "plan_file",
    "read_manifest_rows",
    "read_segments",
    "run_denoise",
    "write_output",
]

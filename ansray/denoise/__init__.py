"""The distributed batch denoise job: plan files, read segments, enhance on actors, stitch, write."""

from ansray.denoise.files import FilePlan, finish_file, plan_file, read_segments
from ansray.denoise.manifest import ManifestWriter, read_manifest_rows
from ansray.denoise.pipeline import DenoiseConfig, DenoiseSummary, SegmentEnhancer, run_denoise

__all__ = [
    "DenoiseConfig",
    "DenoiseSummary",
    "FilePlan",
    "ManifestWriter",
    "SegmentEnhancer",
    "finish_file",
    "plan_file",
    "read_manifest_rows",
    "read_segments",
    "run_denoise",
]

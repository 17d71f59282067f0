"""Other denoisers to compare ansray with, run on the same noisy audio: plain functions from a mono
signal [T] and its rate to the denoised signal [T] at that rate, aligned with the input."""

from ansray.baselines.rnnoise import rnnoise_denoise

BASELINES = {"rnnoise": rnnoise_denoise}
"""The baselines that the evaluation job's --baseline flag accepts, by the system name they get."""

__all__ = ["BASELINES", "rnnoise_denoise"]

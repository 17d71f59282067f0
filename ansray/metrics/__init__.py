"""Speech quality metrics: SI-SDR, PESQ, STOI and ESTOI against a clean reference, DNSMOS without one,
and the word error rate of a transcript (metrics/wer.py, the `asr` extra).

Importing this package needs only numpy and soxr; PESQ, STOI and DNSMOS import the `eval` extra
(pip install "ansray[eval]") when first called. Metric functions take mono numpy signals [T], trim a
pair to the shorter, resample to 16 kHz where the metric needs it, and return NaN where a metric is
undefined; `compute_metrics` also records why."""

from ansray.metrics.compute import METRIC_COLUMNS, METRICS, compute_metrics
from ansray.metrics.dnsmos import DNSMOS, DNSMOSModelError, DNSMOSScores
from ansray.metrics.fidelity import level_difference_db, projection_gain
from ansray.metrics.inputs import METRIC_SAMPLE_RATE, MetricUndefined
from ansray.metrics.intrusive import estoi, pesq_nb, pesq_wb, stoi
from ansray.metrics.si_sdr import si_sdr, si_sdr_improvement
from ansray.metrics.wer import normalized_words, word_error_rate

__all__ = [
    "DNSMOS",
    "DNSMOSModelError",
    "DNSMOSScores",
    "METRICS",
    "METRIC_COLUMNS",
    "METRIC_SAMPLE_RATE",
    "MetricUndefined",
    "compute_metrics",
    "estoi",
    "level_difference_db",
    "normalized_words",
    "pesq_nb",
    "pesq_wb",
    "projection_gain",
    "si_sdr",
    "si_sdr_improvement",
    "stoi",
    "word_error_rate",
]

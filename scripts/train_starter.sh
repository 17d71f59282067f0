#!/usr/bin/env bash
# Reproduces the bundled starter model (ansray/assets/starter) and its quality table, end to end, with
# ansray's own jobs. Measured on a 2-core CPU machine; see README "The starter model" for the figures.
#
#   bash scripts/train_starter.sh [WORK_DIR]      (default /tmp/ansray-starter)
#
# Needs the synthesizers listed in the corpus's SOURCES.md:
#   apt-get install -y espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts wamerican
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/ansray-starter}
CORPUS=$WORK/corpus

# 1. Corpus: synthetic speech from Debian's voices, generated noises, synthetic RIRs; train and
#    held-out splits share no voice, speaker or sentence.
python scripts/make_starter_corpus.py --output "$CORPUS" --seed 0

# 2. Validation mixtures from the training sources (model selection), test mixtures from held-out ones.
python jobs/synthesize.py --clean "$CORPUS/train/clean" --noise "$CORPUS/train/noise" --rir "$CORPUS/train/rir" \
  --output "$WORK/valid" --count 64 --audio-length 4 --snr-range=-5,25 --reverb-fraction 0.3 --valid-fraction 0 --seed 1
python jobs/synthesize.py --clean "$CORPUS/heldout/clean" --noise "$CORPUS/heldout/noise" --rir "$CORPUS/heldout/rir" \
  --output "$WORK/test" --count 150 --audio-length 6 --snr-range=0,20 --reverb-fraction 0.3 --valid-fraction 0 --seed 2

# 3. Training: the tiny FRCRN, 2 DDP workers (half a CPU each, leaving one for Ray Data's on-the-fly
#    mixing), 1500 steps of 2 x 6 one-second crops, SI-SNR loss.
python jobs/train.py --clean "$CORPUS/train/clean" --noise "$CORPUS/train/noise" --rir "$CORPUS/train/rir" \
  --snr-range=-5,25 --reverb-fraction 0.3 --segment-seconds 1.0 --segment-mode random \
  --valid-data "$WORK/valid/train.jsonl" --valid-segments 64 \
  --model-size tiny --batch-size 6 --epochs 6 --steps-per-epoch 250 --loss-mode SiSNR --seed 20 \
  --num-workers 2 --cpus-per-worker 0.5 --checkpoint-every-steps 250 \
  --storage "$WORK/runs" --name starter --export "$WORK/starter"

# 4. Quality on the held-out test set: denoise it with the new model, then score.
python jobs/denoise.py --input "$WORK/test/train/noisy" --output "$WORK/test-enhanced" --model "$WORK/starter"
python jobs/evaluate.py --enhanced "$WORK/test-enhanced" --noisy "$WORK/test/train/noisy" --clean "$WORK/test/train/clean" \
  --output "$WORK/eval" --pair-by fileid --metrics si_sdr,pesq,stoi,dnsmos

echo "model: $WORK/starter; quality: $WORK/eval/summary.md"

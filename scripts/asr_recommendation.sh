#!/usr/bin/env bash
# Which setting to use before ASR: the starter model on held-out real speech with real and generated
# noise (the held-out set of scripts/train_starter_v2.sh, every third pair: 40 pairs of 6 s), at full
# suppression, attenuation limits of 6, 12, 18 and 24 dB, and --if-worse keep-input, beside RNNoise and
# the unprocessed input. WER from PocketSphinx against its own transcript of the clean speech; PESQ-WB,
# STOI, SI-SDR and DNSMOS OVRL as usual.
#
#   bash scripts/asr_recommendation.sh HELDOUT WORK [MODEL]     (HELDOUT: the synthesis output, train/ inside)
set -euo pipefail
HELDOUT=${1:?held-out set}
WORK=${2:?work folder}
MODEL=${3:-ansray/assets/starter}
mkdir -p "$WORK/noisy" "$WORK/clean"
# Every third pair, by file id: links to the held-out files (the job follows links to files).
for noisy in "$HELDOUT"/train/noisy/*.wav; do
  id=${noisy##*_fileid_}; id=${id%.wav}
  if (( id % 3 == 0 )); then
    ln -sf "$noisy" "$WORK/noisy/"
    ln -sf "$HELDOUT/train/clean/clean_fileid_$id.wav" "$WORK/clean/"
  fi
done
python jobs/denoise.py --input "$WORK/noisy" --output "$WORK/full" --model "$MODEL"
for limit in 6 12 18 24; do
  python jobs/denoise.py --input "$WORK/noisy" --output "$WORK/att$limit" --model "$MODEL" --attenuation-limit "$limit"
done
python jobs/denoise.py --input "$WORK/noisy" --output "$WORK/if-worse" --model "$MODEL" --quality dnsmos \
  --if-worse keep-input
python jobs/evaluate.py --noisy "$WORK/noisy" --clean "$WORK/clean" --pair-by fileid --output "$WORK/report" \
  --enhanced full="$WORK/full" --enhanced att6="$WORK/att6" --enhanced att12="$WORK/att12" \
  --enhanced att18="$WORK/att18" --enhanced att24="$WORK/att24" --enhanced if-worse="$WORK/if-worse" \
  --baseline rnnoise --asr pocketsphinx --metrics si_sdr,pesq,stoi,dnsmos

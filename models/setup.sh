#!/usr/bin/env bash
# Installs what the TRAINING pipeline needs (not the product: the plugin only reads the shipped
# weights). Debian 12 bookworm, main only; see models/README.md for what each package is for.
set -euo pipefail
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  fluidsynth fluid-soundfont-gm timgm6mb-soundfont avldrums.lv2-soundfont mma python3-mido \
  espeak-ng praat python3-torch python3-numpy python3-scipy python3-soundfile \
  musescore-general-soundfont-small hydrogen-drumkits festvox-ru festival festlex-cmu \
  festvox-us-slt-hts flite guitarix-common asterisk-core-sounds-en-wav
dpkg-query -W fluidsynth fluid-soundfont-gm timgm6mb-soundfont avldrums.lv2-soundfont mma \
  espeak-ng praat python3-torch python3-numpy python3-scipy python3-soundfile \
  musescore-general-soundfont-small hydrogen-drumkits festvox-ru festival festlex-cmu \
  festvox-us-slt-hts flite guitarix-common asterisk-core-sounds-en-wav

#!/usr/bin/env bash
# Reads the as-added export measurement of hosts_ardour ("peak_dbfs P rms_dbfs R lag ...") and
# fails when the master export of a stereo track with Stemsphere (stereo out) just added, default
# controls, is silent (RMS below -40 dBFS; the input is pink and brown noise at about -20 dBFS).
f=$1
[ -s "$f" ] || { echo "FAIL: no as-added measurement ($f): hosts_ardour did not export"; exit 1; }
read -r _ peak _ rms _ <"$f"
echo "Ardour, Stemsphere just added to a stereo track: master export peak $peak dBFS, RMS $rms dBFS"
if awk "BEGIN { exit !($rms > -40) }"; then echo PASS; exit 0; fi
echo "FAIL: the master is silent with Stemsphere (stereo out) as added"
exit 1

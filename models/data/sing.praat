# Spoken phrase -> sung phrase (PSOLA). Called once per song with a list of phrase base names;
# each base has <base>.wav (speech), <base>.PitchTier and <base>.DurationTier (source time axis).
# Writes <base>_sung.wav. One Praat process per song keeps start-up cost out of the loop.
form Sing phrases
  sentence listfile list.txt
  integer seed 1
endform
# PSOLA places unvoiced pulses at random: seed Praat's generator so songs reproduce.
random_initializeWithSeedUnsafelyButPredictably (seed)
strings = Read Strings from raw text file: listfile$
n = Get number of strings
for i to n
  selectObject: strings
  base$ = Get string: i
  snd = Read from file: base$ + ".wav"
  manip = To Manipulation: 0.01, 60, 800
  pt = Read from file: base$ + ".PitchTier"
  dt = Read from file: base$ + ".DurationTier"
  selectObject: manip, pt
  Replace pitch tier
  selectObject: manip, dt
  Replace duration tier
  selectObject: manip
  res = Get resynthesis (overlap-add)
  Scale peak: 0.9
  Save as WAV file: base$ + "_sung.wav"
  removeObject: snd, manip, pt, dt, res
endfor

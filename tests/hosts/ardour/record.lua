-- Ardour 7.3's Lua cannot import audio headless (hosts-verified.md §5): record a few seconds from
-- the Dummy backend into a stereo track; ardour_test.sh then overwrites the two captured files
-- with a known signal. Env: SESSION_DIR, SECONDS_TO_RECORD.
local dir = os.getenv("SESSION_DIR")
AudioEngine:set_backend("None (Dummy)", "", "")
AudioEngine:set_sample_rate(44100)
AudioEngine:set_buffer_size(256)
local s = create_session(dir, "hosttest", 44100)
assert(s, "create_session failed")
local tr = s:new_audio_track(2, 2, nil, 1, "T", ARDOUR.PresentationInfo.max_order,
                             ARDOUR.TrackMode.Normal, true):front()
tr:rec_enable_control():set_value(1, PBD.GroupControlDisposition.NoGroup)
s:maybe_enable_record(false)
s:request_roll(ARDOUR.TransportRequestSource.TRS_UI)
ARDOUR.LuaAPI.usleep(math.floor(tonumber(os.getenv("SECONDS_TO_RECORD")) * 1000000))
s:request_stop(false, false, ARDOUR.TransportRequestSource.TRS_UI)
ARDOUR.LuaAPI.usleep(500000)
s:disable_record(false, false)
tr:rec_enable_control():set_value(0, PBD.GroupControlDisposition.NoGroup)
print("RECORDED regions " .. tr:playlist():region_list():size())
s:save_state("", false, false, false, false, false)
close_session()

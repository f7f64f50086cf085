-- One phase of the Ardour headless test (ardour_test.sh runs each in its own ardour7-lua process,
-- so that a crash in Ardour's export code can be retried without redoing the others).
-- Env: SESSION_DIR, PHASE (stereo_as_added | stereo_plain | add | export_as_added |
-- export_bypassed | export_vocals_pair | export_vocals_solo | studio | reload), OUT_DIR,
-- EXPORT_FRAMES.
-- Prints "KEY value" lines that ardour_test.sh checks.
local uri = "https://stemsphere.dev/plugins/stemsphere" -- Stemsphere Stems (2 -> 10)
local stereo_uri = "https://stemsphere.dev/plugins/stemsphere-stereo" -- Stemsphere (2 -> 2)
local dir, phase, out = os.getenv("SESSION_DIR"), os.getenv("PHASE"), os.getenv("OUT_DIR")
AudioEngine:set_backend("None (Dummy)", "", "")
AudioEngine:set_sample_rate(44100)
AudioEngine:set_buffer_size(256)
local s = load_session(dir, "hosttest")
assert(s, "load_session failed")
local tr
for t in s:get_tracks():iter() do tr = t end
-- The record phase may leave the track armed, and an armed track's export loses its first
-- latency frames (hosts-verified.md §5).
tr:rec_enable_control():set_value(0, PBD.GroupControlDisposition.NoGroup)

-- Control-port ordinal (what set/get_plugin_insert_param take) of the port labelled `label`.
local function control(pi, label)
  local plug, k = pi:plugin(0), 0
  for j = 0, plug:parameter_count() - 1 do
    if plug:parameter_is_control(j) then
      local _, t = plug:get_parameter_descriptor(j, ARDOUR.ParameterDescriptor())
      if t[2].label == label then return k end
      k = k + 1
    end
  end
  error("no control labelled " .. label)
end
local function get(pi, label)
  return ARDOUR.LuaAPI.get_plugin_insert_param(pi, control(pi, label), true)
end
local function set(pi, label, v)
  assert(ARDOUR.LuaAPI.set_plugin_insert_param(pi, control(pi, label), v), "set " .. label)
end
local function insert()
  local p = tr:nth_plugin(0)
  assert(not p:isnil(), "no plugin on the track")
  return p:to_insert()
end
local function export(name, frames)
  -- A new SimpleExport for each export: reusing one writes an empty file (hosts-verified.md).
  local e = s:simple_export()
  e:set_name(name)
  e:set_folder(out)
  e:set_range(0, frames)
  e:set_preset("75969a1c-3133-4694-864b-a1fa50e43348") -- "WAV @ session-rate"
  print("EXPORT " .. name .. " " .. tostring(e:run_export()))
end
local function latencies(pi, tag)
  print("LATENCY " .. tag .. " port " .. math.floor(get(pi, "Latency")) .. " plugin " ..
        pi:signal_latency() .. " route " .. tr:signal_latency())
end
local export_frames = math.floor(tonumber(os.getenv("EXPORT_FRAMES")))

if phase == "stereo_as_added" or phase == "stereo_plain" then
  -- Stemsphere (stereo out) added to the recorded stereo track as Ardour set it up, nothing
  -- else touched (the track's panner in place); not saved, so the later phases start from the
  -- plain recorded session.
  local proc = ARDOUR.LuaAPI.new_plugin(s, stereo_uri, ARDOUR.PluginType.LV2, "")
  assert(not proc:isnil(), "Ardour cannot find Stemsphere (stereo out)")
  print("ADD " .. tr:add_processor_by_index(proc, 0, nil, true))
  local pi = proc:to_insert()
  -- stereo_plain: the plain sum of the stems, which must equal the input (delay compensation).
  if phase == "stereo_plain" then set(pi, "Binaural", 0) end
  print("OUTPUTS natural " .. pi:natural_output_streams():n_audio() .. " configured " ..
        pi:output_streams():n_audio() .. " track " .. tr:n_outputs():n_audio())
  ARDOUR.LuaAPI.usleep(300000)
  latencies(pi, "stereo")
  export(phase, export_frames)
elseif phase == "add" then
  tr:set_strict_io(true)
  local proc = ARDOUR.LuaAPI.new_plugin(s, uri, ARDOUR.PluginType.LV2, "")
  assert(not proc:isnil(), "Ardour cannot find the plugin")
  print("ADD " .. tr:add_processor_by_index(proc, 0, nil, true))
  local pi = proc:to_insert()
  set(pi, "Binaural", 0)
  print("OUTPUTS natural " .. pi:natural_output_streams():n_audio() .. " configured " ..
        pi:output_streams():n_audio() .. " track " .. tr:n_outputs():n_audio())
  local plug = pi:plugin(0)
  for i = 0, pi:natural_output_streams():n_audio() - 1 do
    local d = plug:describe_io_port(ARDOUR.DataType("audio"), false, i)
    print("PORT " .. i .. " " .. d.group_name .. " " .. d.group_channel .. " " .. d.name)
  end
  local presets = 0
  for _ in pi:plugin(0):get_info():get_presets(false):iter() do presets = presets + 1 end
  print("PRESETS " .. presets)
  ARDOUR.LuaAPI.usleep(300000)
  latencies(pi, "live")
  s:save_state("", false, false, false, false, false)
  print("SAVED " .. phase)
elseif phase == "export_as_added" then
  export("as_added", export_frames)
elseif phase == "export_bypassed" then
  -- The workaround for the 2->10 outputs: without the track's panner the main pair reaches the
  -- master (hosts-verified.md §1).
  tr:panner_shell():set_bypassed(true)
  export("bypassed", export_frames)
elseif phase == "export_vocals_pair" then
  -- Stem routing: only the plugin's Vocals pair (track outputs 3/4) to the master.
  tr:panner_shell():set_bypassed(true)
  local out, master = tr:output(), s:master_out():input()
  out:disconnect_all(nil)
  print("CONNECT " .. out:audio(2):connect(master:audio(0):name()) .. " " ..
        out:audio(3):connect(master:audio(1):name()))
  export("vocals_pair", export_frames)
elseif phase == "export_vocals_solo" then
  -- The Mix pair with the vocals soloed: what the Vocals pair must equal.
  tr:panner_shell():set_bypassed(true)
  set(insert(), "Vocals Solo", 1)
  export("vocals_solo", export_frames)
elseif phase == "studio" then
  tr:panner_shell():set_bypassed(true)
  local pi = insert()
  set(pi, "Quality", 2)
  latencies(pi, "switch+0ms")
  for _ = 1, 100 do
    ARDOUR.LuaAPI.usleep(100000)
    if pi:signal_latency() ~= 1024 and tr:signal_latency() == pi:signal_latency() then break end
  end
  latencies(pi, "studio")
  export("studio", export_frames)
  -- Changed after the export (which must equal the input), to be found again after reload.
  set(pi, "Vocals Gain", -7.5)
  set(pi, "Drums Azimuth", 45)
  s:save_state("", false, false, false, false, false)
  print("SAVED " .. phase)
elseif phase == "reload" then
  local pi = insert()
  ARDOUR.LuaAPI.usleep(1000000)
  for _, label in ipairs({"Vocals Gain", "Drums Azimuth", "Binaural", "Quality"}) do
    print("CONTROL " .. label:gsub(" ", "_") .. " " .. get(pi, label))
  end
  latencies(pi, "reloaded")
  s:save_state("", false, false, false, false, false)
  print("SAVED " .. phase)
  -- Factory presets through Ardour's preset menu code: a level one, then a stage one on top.
  for _, label in ipairs({"Karaoke", "Wide stage"}) do
    local pr = pi:plugin(0):preset_by_label(label)
    assert(pr, "no preset " .. label)
    print("PRESET " .. label:gsub(" ", "_") .. " " .. tostring(pi:plugin(0):load_preset(pr)))
    ARDOUR.LuaAPI.usleep(200000)
  end
  for _, label in ipairs({"Vocals Mute", "Drums Azimuth", "Binaural"}) do
    print("AFTER_PRESETS " .. label:gsub(" ", "_") .. " " .. get(pi, label))
  end
end
close_session()
print("PHASE " .. phase .. " done")

-- wrk script: each request is either POST /v1/leases with a unique lease_id or the settle
-- (unique settle_id) of a lease whose open was acknowledged; run one connection per wrk thread
-- (-tN -cN). STEMSPHERE_TOKENS: space-separated bearer tokens, thread i uses token i mod n (one
-- token = one hot account; many = many accounts). STEMSPHERE_RUN: id prefix unique per run.
local tokens = {}
for t in string.gmatch(os.getenv("STEMSPHERE_TOKENS") or "", "%S+") do table.insert(tokens, t) end
local run = os.getenv("STEMSPHERE_RUN") or tostring(os.time())
local next_tid = 0
local counter = 0
local ready = {}  -- lease ids whose open was acknowledged, waiting for their settle

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
end

function init(args)
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. tokens[(tid - 1) % #tokens + 1]
end

function request()
  local id = table.remove(ready)
  if id then
    return wrk.format("POST", "/v1/leases/" .. id .. "/settle", nil,
      '{"settle_id":"' .. id .. '-s","used_ms":30000}')
  end
  counter = counter + 1
  id = run .. "-" .. tid .. "-" .. counter
  return wrk.format("POST", "/v1/leases", nil,
    '{"lease_id":"' .. id .. '","device_id":"bench","want_ms":60000}')
end

function response(status, headers, body)
  if status == 201 then
    local id = string.match(body, '"lease_id":"([^"]+)"')
    if id then table.insert(ready, id) end
  elseif status >= 300 and os.getenv("STEMSPHERE_BENCH_DEBUG") then
    io.stderr:write(status .. " " .. body .. "\n")
  end
end

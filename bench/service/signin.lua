-- wrk script: POST /v1/sessions with one account's credentials (argon2id verification each time).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email":"' .. os.getenv("STEMSPHERE_EMAIL") .. '","password":"' ..
  os.getenv("STEMSPHERE_PASSWORD") .. '","device_name":"bench"}'

-- Names every response that is not 2xx (status and the service's error code), so a non-2xx count
-- in the summary is explained rather than guessed at.
function response(status, headers, body)
  if status < 200 or status > 299 then
    io.stderr:write(string.format("sign-in: HTTP %d %s\n", status, body or ""))
  end
end

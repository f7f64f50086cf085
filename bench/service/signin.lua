-- wrk script: POST /v1/sessions with one account's credentials (argon2id verification each time).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email":"' .. os.getenv("STEMSPHERE_EMAIL") .. '","password":"' ..
  os.getenv("STEMSPHERE_PASSWORD") .. '","device_name":"bench"}'

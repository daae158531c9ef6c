-- wrk script: sign-ins (POST /api/v1/session) of one person with the right password.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"username":"' .. os.getenv("LOGIN_NAME") .. '","password":"' .. os.getenv("LOGIN_PASSWORD") .. '"}'
wrk.path = "/api/v1/session"

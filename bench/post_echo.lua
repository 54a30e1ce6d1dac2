-- wrk script: POST /jobs/echo with a fresh X-Request-Id (32 hex characters) each request.
math.randomseed(os.time() + math.floor(os.clock() * 1000000))
local counter = 0
wrk.method = "POST"
wrk.body = '{"n": 1}'
wrk.headers["Content-Type"] = "application/json"

request = function()
  counter = counter + 1
  wrk.headers["X-Request-Id"] = string.format(
    "%08x%08x%08x%08x",
    math.random(0, 0x7fffffff), math.random(0, 0x7fffffff), counter, math.random(0, 0x7fffffff)
  )
  return wrk.format(nil, nil, nil, nil)
end

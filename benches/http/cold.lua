-- A different code on every request (signature verified each time). Run with -t1 so
-- one counter walks the file; the file must hold more codes than requests sent.
local codes = {}
for line in io.lines(os.getenv("CODES")) do codes[#codes + 1] = line end
local headers = {
  ["Authorization"] = "Bearer " .. os.getenv("KEY"),
  ["Content-Type"] = "text/plain",
}
-- Each run starts at OFFSET, so successive runs never resend a code (the signature
-- cache would make them warm).
local i = tonumber(os.getenv("OFFSET") or "0")
request = function()
  i = i + 1
  return wrk.format("POST", "/v1/verify?venue=bus", headers, codes[(i - 1) % #codes + 1])
end
done = function(summary, latency, requests)
  io.write(string.format("cold: %d requests over %d distinct codes\n", summary.requests, #codes))
end

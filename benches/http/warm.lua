-- The same code on every request (signature-cache hits).
wrk.method = "POST"
wrk.path = "/v1/verify?venue=bus"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
wrk.headers["Content-Type"] = "text/plain"
wrk.body = os.getenv("CODE")

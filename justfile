# Daily tasks for purechat. `just --list` shows them.

# Start a server on 127.0.0.1:50051.
serve *ARGS:
    purechat serve {{ARGS}}

# Join a room from this terminal.
join *ARGS:
    purechat join {{ARGS}}

# The test suite, as CI runs it.
test *ARGS:
    python -m pytest {{ARGS}}

# Regenerate purechat/pb from proto/ (the drift test checks it was done).
proto:
    python proto/generate.py

# ruff (with its async rules) and mypy.
lint:
    ruff check .
    ruff format --check .
    mypy

# Benchmarks: purechat beside the tutorial's grpc-go server and a grpcio-asyncio server,
# grpc-go members as the load (needs Go, as the grpc-go tests); writes BENCHMARKS.md,
# bench/fanout.png and bench/results.json (about 20 minutes).
bench:
    python bench/run.py

# A seconds-long run of the benchmark machinery, as CI runs it (not a measurement).
bench-smoke:
    python bench/run.py --smoke

# Where the server spends its time (py-spy) while 100 grpc-go members receive; RATE=0 is
# one sender flat out.
profile RATE="0":
    python bench/profile.py {{RATE}}

# The README's pictures of the web page, light and dark (docs/web-*.png), by a browser test.
web-screenshot:
    PURECHAT_SCREENSHOTS=docs python -m pytest tests/test_web_browser.py -k two_rooms

# Daily tasks for purechat. `just --list` shows them, each with a line: a recipe's
# comment of one line, or its [doc(...)] where more is said above it.

# Start a server on 127.0.0.1:50051.
serve *ARGS:
    purechat serve {{ARGS}}

# Join a room from this terminal.
join *ARGS:
    purechat join {{ARGS}}

# The test suite, as CI runs it.
test *ARGS:
    python -m pytest -n auto {{ARGS}}

# Regenerate purechat/pb from proto/ (the drift test checks it was done).
proto:
    python proto/generate.py

# Lint: ruff (with its async rules) and mypy.
lint:
    ruff check .
    ruff format --check .
    mypy

# Benchmarks: purechat beside the tutorial's grpc-go server and a grpcio-asyncio server,
# grpc-go members as the load (needs Go, as the grpc-go tests); writes BENCHMARKS.md,
# bench/fanout.png and bench/results.json (about 20 minutes).
[doc("Benchmarks beside grpc-go's and grpcio's servers; writes BENCHMARKS.md (about 20 minutes).")]
bench:
    python bench/run.py

# A seconds-long run of the benchmark machinery, as CI runs it (not a measurement).
bench-smoke:
    python bench/run.py --smoke

# Where the server spends its time (py-spy) while 100 grpc-go members receive; RATE=0 is
# one sender flat out.
[doc("Where the server spends its time (py-spy) while 100 grpc-go members receive.")]
profile RATE="0":
    python bench/profile.py {{RATE}}

# The README's pictures of the web page, light and dark, with two rooms and two
# conversations and their unread counts (docs/web-*.png), taken by a browser test;
# needs chromium and chromium-driver, as the browser tests do.
[doc("The README's pictures of the web page, light and dark (docs/web-*.png).")]
web-screenshot:
    PURECHAT_SCREENSHOTS=docs python -m pytest tests/test_web_conversations.py -k two_rooms

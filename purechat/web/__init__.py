"""purechat in the browser: a page and its WebSocket, served by the chat server itself.

`purechat serve --web-port PORT` serves, in the same process and task group as the gRPC
listener, one page (`static/`: plain files, no build step) and `/ws`, where a page's
WebSocket becomes a member of the same rooms as every gRPC member: the same hub,
names, presence, numbering, history, limits, pacing, tokens, metrics and logs.

One concept per module:

- `listener`: the port, TLS, connection limits, shutdown (`WebServer`);
- `http`: one HTTP/1.1 connection with h11: the page, and the upgrade;
- `origin`: which pages may open a session (cross-site WebSocket hijacking);
- `socket`: one WebSocket with wsproto: messages in, whole frames out, one state;
- `frames`: the JSON wire format (documented there), encoded once per broadcast;
- `member`: the web member's reader, a sibling of server/members.py's two.

Imported by the server only when a web port is set.
"""

// The page: the join form, the room, the socket. Every decision about what to send
// and when lives in session.mjs; this file moves frames and draws.
//
// Whatever came from the server (names, text) is put on the page as text, never as
// HTML, and control characters are shown as escapes, never obeyed.

import { Session, randomId } from "./session.mjs";

const $ = (id) => document.getElementById(id);
const ui = {
  joinView: $("join-view"),
  joinForm: $("join-form"),
  name: $("name"),
  room: $("room"),
  token: $("token"),
  joinError: $("join-error"),
  chatView: $("chat-view"),
  roomTitle: $("room-title"),
  status: $("status"),
  leave: $("leave"),
  log: $("log"),
  members: $("members"),
  memberCount: $("member-count"),
  sendForm: $("send-form"),
  line: $("line"),
};
// Recent messages shown on joining.
const HISTORY = 50;
// Lines the log keeps; older ones leave the page (the server keeps the history).
const MAX_LINES = 2000;
const HELP = "/me ACTION sends an action, /who lists who is here, /help shows this.";
// Characters that would be obeyed rather than shown: controls, and bidi overrides.
// eslint-disable-next-line no-control-regex
const INVISIBLE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

const state = {
  session: null,
  socket: null,
  timer: null,
  countdown: null,
  unread: 0,
  inHistory: false,
};

const now = () => performance.now() / 1000;

function visible(text) {
  return String(text).replace(
    INVISIBLE,
    (ch) => `\\u${ch.codePointAt(0).toString(16).padStart(4, "0")}`,
  );
}

// -- joining and leaving ---------------------------------------------------------------

function sessionId() {
  // Kept for this tab, so a reload takes its own name over instead of becoming name-2.
  let id = sessionStorage.getItem("purechat-session");
  if (!id) {
    id = randomId();
    sessionStorage.setItem("purechat-session", id);
  }
  return id;
}

ui.name.value = localStorage.getItem("purechat-name") || "";
ui.room.value = localStorage.getItem("purechat-room") || "lobby";

ui.joinForm.addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  const name = ui.name.value.trim();
  const room = ui.room.value.trim() || "lobby";
  localStorage.setItem("purechat-name", name);
  localStorage.setItem("purechat-room", room);
  // The token stays in this page's memory: never stored, never in a URL.
  start(new Session({ name, room, token: ui.token.value.trim(), history: HISTORY, sessionId: sessionId() }));
});

ui.leave.addEventListener("click", () => stop(""));

function start(session) {
  state.session = session;
  state.inHistory = false;
  ui.log.replaceChildren();
  ui.joinError.textContent = "";
  ui.joinView.hidden = true;
  ui.chatView.hidden = false;
  connect();
  ui.line.focus();
}

function stop(reason) {
  const socket = state.socket;
  state.session = null;
  state.socket = null;
  clearTimeout(state.timer);
  if (socket) socket.close(1000);
  ui.joinError.textContent = reason;
  ui.chatView.hidden = true;
  ui.joinView.hidden = false;
  document.title = "purechat";
}

// -- the socket ------------------------------------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws`);
  let opened = false;
  state.socket = socket;
  const current = () => state.socket === socket && state.session !== null;
  socket.addEventListener("open", () => {
    if (!current()) return;
    opened = true;
    apply(state.session.connected(now()));
  });
  socket.addEventListener("message", (message) => {
    if (!current()) return;
    let frame;
    try {
      frame = JSON.parse(message.data);
    } catch {
      return;
    }
    apply(state.session.received(frame, now()));
  });
  socket.addEventListener("close", (closed) => {
    if (!current()) return;
    state.socket = null;
    apply(state.session.closed(now(), { opened, code: closed.code, reason: closed.reason }));
  });
  render();
}

function apply(actions) {
  for (const action of actions) {
    if (action.type === "transmit") {
      const socket = state.socket;
      // On a socket that is going away the line stays pending and goes on the next.
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(action.frame));
    } else if (action.type === "show") {
      show(action.item);
    } else if (action.type === "giveUp") {
      stop(action.reason);
      return;
    }
  }
  schedule();
  render();
}

/** One timer: the next reconnect while away, or the session's next deadline. */
function schedule() {
  clearTimeout(state.timer);
  const session = state.session;
  if (!session) return;
  const at = session.phase === "away" && !state.socket ? session.reconnectAt : session.deadline();
  if (at === null) return;
  state.timer = setTimeout(wake, Math.max(0, (at - now()) * 1000));
}

function wake() {
  const session = state.session;
  if (!session) return;
  if (session.phase === "away" && !state.socket) {
    connect();
  } else {
    apply(session.tick(now()));
  }
}

// -- typing ----------------------------------------------------------------------------

ui.sendForm.addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  const session = state.session;
  const text = ui.line.value;
  if (!session || !text.trim()) return;
  ui.line.value = "";
  if (text.startsWith("/")) {
    command(session, text);
  } else {
    apply(session.send(text, now()));
  }
});

function command(session, text) {
  const [word, ...rest] = text.slice(1).split(" ");
  if (word === "me" && rest.join(" ").trim()) {
    apply(session.send(rest.join(" "), now(), true));
  } else if (word === "who") {
    note("info", `here: ${session.memberList()}`);
  } else if (word === "help") {
    note("info", HELP);
  } else {
    note("error", `Unknown command /${word}: ${HELP}`);
  }
}

function note(kind, text) {
  show({ kind, room: state.session.room, text, user: "", seq: 0, timeMs: 0 });
}

// -- drawing ---------------------------------------------------------------------------

function show(item) {
  const atBottom = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 40;
  if (item.history && !state.inHistory) {
    state.inHistory = true;
    ui.log.append(line("divider", "earlier messages"));
  } else if (!item.history && state.inHistory && item.kind !== "info") {
    state.inHistory = false;
    ui.log.append(line("divider", "new messages"));
  }
  const entry = line(item.kind, "");
  if (item.history) entry.classList.add("history");
  if (item.seq) entry.dataset.seq = String(item.seq);
  if (item.timeMs) {
    const time = document.createElement("time");
    const when = new Date(item.timeMs);
    time.dateTime = when.toISOString();
    time.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    entry.append(time, " ");
  }
  if (item.kind === "message") {
    entry.dataset.user = item.user;
    if (item.user === state.session.myName) entry.classList.add("mine");
    if (item.action) entry.classList.add("action");
    const sender = visible(state.session.shownName(item.user));
    entry.append(span("user", sender), " ", span("text", visible(item.text)));
    countUnread(item);
  } else if (item.kind === "join" || item.kind === "leave") {
    entry.dataset.user = item.user;
    const [arrow, what] = item.kind === "join" ? ["→ ", " joined"] : ["← ", " left"];
    entry.append(arrow, span("user", visible(state.session.shownName(item.user))), what);
  } else {
    entry.append(span("text", visible(item.text)));
    if (item.kind === "error") entry.setAttribute("role", "alert");
  }
  ui.log.append(entry);
  while (ui.log.childElementCount > MAX_LINES) ui.log.firstElementChild.remove();
  if (atBottom) ui.log.scrollTop = ui.log.scrollHeight;
}

function line(kind, text) {
  const entry = document.createElement("li");
  entry.className = `line ${kind}`;
  entry.dataset.kind = kind;
  if (text) entry.textContent = text;
  return entry;
}

function span(kind, text) {
  const part = document.createElement("span");
  part.className = kind;
  part.textContent = text;
  return part;
}

/** "reconnecting in 4 s", kept current by a re-render each second while away. */
function countdown(session) {
  clearTimeout(state.countdown);
  const left = Math.max(0, Math.ceil(session.reconnectAt - now()));
  if (left > 0) state.countdown = setTimeout(render, 1000);
  return left > 0 ? `reconnecting in ${left} s` : "reconnecting…";
}

function render() {
  const session = state.session;
  if (!session) return;
  ui.roomTitle.textContent = visible(session.room);
  let status;
  if (session.phase === "joined") {
    status = `connected as ${visible(session.shownName(session.myName))}`;
  } else if (session.phase === "joining" || state.socket) {
    status = "connecting…";
  } else {
    status = session.trouble ? `${session.trouble}; ${countdown(session)}` : "connecting…";
  }
  if (session.undelivered) status += ` · ${session.undelivered} waiting to be sent`;
  ui.status.textContent = status;
  ui.status.dataset.phase = session.phase;
  const names = [...session.members].sort();
  ui.memberCount.textContent = String(names.length);
  ui.members.replaceChildren(
    ...names.map((name) => {
      const entry = document.createElement("li");
      entry.textContent = visible(session.shownName(name));
      if (name === session.myName) entry.classList.add("me");
      return entry;
    }),
  );
  const unread = state.unread ? `(${state.unread}) ` : "";
  document.title = `${unread}${visible(session.room)} — purechat`;
}

// -- the unread count in the tab's title -----------------------------------------------

function countUnread(item) {
  if (item.history || item.user === state.session.myName) return;
  if (document.hidden || !document.hasFocus()) state.unread += 1;
}

function seen() {
  if (!document.hidden && document.hasFocus() && state.unread) {
    state.unread = 0;
    render();
  }
}

document.addEventListener("visibilitychange", seen);
window.addEventListener("focus", seen);

// The page: the join form (and logging in), the rooms (one session and one socket
// each), the drawing. Every decision about what to send and when lives in session.mjs;
// how moderation commands are read in moderation.mjs; how text is shown (links,
// mentions, escapes, dates) in text.mjs; this file moves frames and draws.
//
// Logging in (or registering) is done over a socket of its own before the first room
// opens: the server answers with a session token, which stays in this page's memory
// (never stored, never in a URL) and goes in every room's join, as a token does. The
// password leaves the form once it has been used.
//
// Whatever came from the server (names, text) is put on the page as text, never as
// HTML, and control characters are shown as escapes, never obeyed.

import {
  CommandUsage,
  USAGE,
  formatDuration,
  command as moderation,
  typed,
} from "./moderation.mjs";
import { Session, randomId, sentence, utf8Length } from "./session.mjs";
import { dayLabel, dayOf, mentions, pieces, visible } from "./text.mjs";

const $ = (id) => document.getElementById(id);
const ui = {
  joinView: $("join-view"),
  joinForm: $("join-form"),
  name: $("name"),
  room: $("room"),
  password: $("password"),
  token: $("token"),
  join: $("join"),
  register: $("register"),
  joinError: $("join-error"),
  page: $("page"),
  // What shows once in a room (the join form shows alone before).
  inRoom: [$("room-header"), $("room-list"), $("room-view"), $("here")],
  roomTitle: $("room-title"),
  topic: $("topic"),
  status: $("status"),
  notify: $("notify"),
  leave: $("leave"),
  rooms: $("rooms"),
  roomForm: $("room-form"),
  newRoom: $("new-room"),
  logs: $("logs"),
  pending: $("pending"),
  members: $("members"),
  memberCount: $("member-count"),
  sendForm: $("send-form"),
  line: $("line"),
  sendProblem: $("send-problem"),
  announcer: $("announcer"),
};
// Recent messages shown on joining a room.
const HISTORY = 50;
// Lines a room's log keeps; older ones leave the page (the server keeps the history).
const MAX_LINES = 2000;
// Lines waiting to be sent shown under the log, at most (the status line counts them all).
const PENDING_SHOWN = 3;
// Announcements the live region keeps (a screen reader reads each once, as it comes).
const ANNOUNCED = 5;
// Rooms open in one tab, at most (each is a socket).
const MAX_ROOMS = 20;
const DEFAULT_ROOM = "lobby";
const HELP = [
  "Enter sends; Shift+Enter starts a new line (a pasted block is one message).",
  "/join ROOM opens another room, /leave closes this one, /rooms lists the rooms with members,",
  "/who lists who is here, /me ACTION says that you do something, /nick NAME changes your name,",
  "/help shows this; //text sends a line that starts with /.",
  "Moderation (the room's owner and operators; DURATION like 10m, 2h, 7d; or a member's menu):",
  ...Object.values(USAGE).map(([usage, about]) => `${usage}: ${about}`),
];
// What a member's menu offers a moderator: [label, action, seconds, for the owner only].
const MENU = [
  ["Kick", "kick", null, false],
  ["Mute for 10 minutes", "mute", 600, false],
  ["Unmute", "unmute", null, false],
  ["Ban for an hour", "ban", 3600, false],
  ["Ban for good", "ban", null, false],
  ["Make an operator", "op", null, true],
  ["No longer an operator", "deop", null, true],
];

const now = () => performance.now() / 1000;

/** One room of the tab: its session, its socket, its log and what is unread in it. */
class Room {
  constructor(name, session) {
    this.name = name;
    this.session = session;
    this.socket = null;
    this.timer = null;
    this.countdown = null;
    // Messages from others not yet seen, and whether one of them names me.
    this.unread = 0;
    this.mentioned = false;
    this.inHistory = false;
    // The local day of the newest dated line, for date separators.
    this.lastDay = null;
    this.log = document.createElement("ol");
    this.log.className = "log";
    this.log.tabIndex = 0; // scrollable by keyboard
    this.log.setAttribute("aria-label", `Messages in ${visible(name)}`);
    this.log.hidden = true;
    ui.logs.append(this.log);
    // Its place in the room list: one button, kept (so focus stays on it as it changes).
    this.button = document.createElement("button");
    this.button.type = "button";
    this.button.className = "room";
    this.button.dataset.room = name;
    this.button.addEventListener("click", () => {
      activate(this);
      ui.line.focus();
    });
    this.entry = document.createElement("li");
    this.entry.append(this.button);
    ui.rooms.append(this.entry);
  }
}

const state = {
  rooms: new Map(),
  active: null,
  name: "",
  token: "",
  // The member whose menu is open (its name), and what the member list was drawn from.
  menuOpen: "",
  membersDrawn: "",
};

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

// The name is remembered as a value (it is yours); the room is a placeholder, so what
// is typed there is the room, not appended to one.
ui.name.value = localStorage.getItem("purechat-name") || "";

ui.joinForm.addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  enter(false);
});

ui.register.addEventListener("click", () => {
  if (!ui.name.value.trim() || !ui.password.value) {
    ui.joinError.textContent = "To register, choose a name and a password (8 characters or more).";
    (ui.name.value.trim() ? ui.password : ui.name).focus();
    return;
  }
  enter(true);
});

/** Join: with a password, log in (or register, then log in) first. */
async function enter(registering) {
  const name = ui.name.value.trim();
  const password = ui.password.value;
  localStorage.setItem("purechat-name", name);
  ui.joinError.textContent = "";
  // The token stays in this page's memory: never stored, never in a URL.
  state.token = ui.token.value.trim();
  state.name = name;
  if (password || registering) {
    busy(true);
    try {
      const session = await logIn(name, password, registering);
      state.token = session.token;
      state.name = session.account;
      ui.password.value = "";
    } catch (refused) {
      busy(false);
      ui.joinError.textContent = refused.message;
      ui.password.focus();
      return;
    }
    busy(false);
  }
  showRooms(true);
  openRoom(ui.room.value.trim() || DEFAULT_ROOM);
  fitLine();
  ui.line.focus();
}

function busy(waiting) {
  ui.join.disabled = waiting;
  ui.register.disabled = waiting;
  ui.joinForm.setAttribute("aria-busy", String(waiting));
}

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/ws`;
}

/** Log in (registering first, when asked) over a socket of its own: resolves to the
 * session ({token, account, expires_unix_ms}); rejects with the server's sentence. */
function logIn(name, password, registering) {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(socketUrl());
    let settled = false;
    const settle = (outcome, value) => {
      if (settled) return;
      settled = true;
      socket.close(1000);
      outcome(value);
    };
    socket.addEventListener("open", () => {
      const kind = registering ? "register" : "login";
      socket.send(JSON.stringify({ [kind]: { name, password } }));
    });
    socket.addEventListener("message", (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (frame.registered) {
        socket.send(JSON.stringify({ login: { name, password } }));
      } else if (frame.session) {
        settle(resolve, frame.session);
      } else if (frame.error) {
        settle(reject, new Error(sentence(frame.error.message)));
      }
    });
    socket.addEventListener("close", (closed) => {
      const why = closed.reason || "cannot reach the server: try again in a moment";
      settle(reject, new Error(sentence(why)));
    });
  });
}

ui.leave.addEventListener("click", () => {
  if (state.active) closeRoom(state.active, "");
});

ui.roomForm.addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  const name = ui.newRoom.value.trim();
  const problem = roomProblem(name);
  if (problem) {
    problemAtSend(problem, ui.newRoom);
    return;
  }
  ui.newRoom.value = "";
  ui.newRoom.removeAttribute("aria-invalid");
  ui.sendProblem.textContent = "";
  openRoom(name);
  ui.line.focus();
});

/** The rooms, or (before joining and after the last room is left) the join form. */
function showRooms(inRoom) {
  ui.joinView.hidden = inRoom;
  for (const part of ui.inRoom) part.hidden = !inRoom;
  ui.page.classList.toggle("in-room", inRoom);
}

/** The first rules a room name breaks, if any (the server checks all of them). */
function roomProblem(name) {
  if (!name) return "Type the name of a room to join.";
  if (/\s/.test(name)) return "Room names cannot contain spaces.";
  if (name.length > 64) return "Room names are at most 64 characters.";
  return "";
}

/** Open a room (or show it, when it is open already). */
function openRoom(name) {
  let room = state.rooms.get(name);
  if (!room) {
    if (state.rooms.size >= MAX_ROOMS) {
      problemAtSend(`At most ${MAX_ROOMS} rooms can be open in one tab.`);
      return;
    }
    const session = new Session({
      name: state.name,
      room: name,
      token: state.token,
      history: HISTORY,
      sessionId: sessionId(),
    });
    room = new Room(name, session);
    state.rooms.set(name, room);
    connect(room);
  }
  activate(room);
}

function activate(room) {
  const previous = state.active;
  if (previous !== room) state.menuOpen = "";
  if (previous && previous !== room) previous.log.hidden = true;
  state.active = room;
  room.log.hidden = false;
  room.unread = 0;
  room.mentioned = false;
  room.log.scrollTop = room.log.scrollHeight;
  render();
}

/** Leave a room: its socket closes; the last room leaves to the join form, with reason. */
function closeRoom(room, reason) {
  const socket = room.socket;
  room.socket = null;
  clearTimeout(room.timer);
  clearTimeout(room.countdown);
  if (socket) socket.close(1000);
  room.log.remove();
  room.entry.remove();
  state.rooms.delete(room.name);
  if (state.rooms.size === 0) {
    state.active = null;
    ui.joinError.textContent = reason;
    showRooms(false);
    document.title = "purechat";
    ui.name.focus();
    return;
  }
  if (state.active === room) activate([...state.rooms.values()].at(-1));
  if (reason) note(state.active, "error", `${visible(room.name)}: ${reason}`);
  render();
}

// -- the sockets -----------------------------------------------------------------------

function connect(room) {
  const socket = new WebSocket(socketUrl());
  let opened = false;
  room.socket = socket;
  const current = () => room.socket === socket && state.rooms.get(room.name) === room;
  socket.addEventListener("open", () => {
    if (!current()) return;
    opened = true;
    apply(room, room.session.connected(now()));
  });
  socket.addEventListener("message", (message) => {
    if (!current()) return;
    let frame;
    try {
      frame = JSON.parse(message.data);
    } catch {
      return;
    }
    apply(room, room.session.received(frame, now()));
  });
  socket.addEventListener("close", (closed) => {
    if (!current()) return;
    room.socket = null;
    const ending = { opened, code: closed.code, reason: closed.reason };
    apply(room, room.session.closed(now(), ending));
  });
  render();
}

function apply(room, actions) {
  for (const action of actions) {
    if (action.type === "transmit") {
      const socket = room.socket;
      // On a socket that is going away the line stays pending and goes on the next.
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(action.frame));
    } else if (action.type === "show") {
      show(room, action.item);
    } else if (action.type === "refused") {
      refused(room, action);
    } else if (action.type === "rooms") {
      listRooms(room, action.rooms);
    } else if (action.type === "reconnect") {
      // A new socket is wanted now (a new name): the old one is let go, unheard.
      const socket = room.socket;
      room.socket = null;
      if (socket) socket.close(1000);
    } else if (action.type === "giveUp") {
      // A session the server no longer takes (ended, expired) is logged in again.
      if (action.code === "UNAUTHENTICATED") state.token = "";
      closeRoom(room, action.reason);
      return;
    }
  }
  schedule(room);
  render();
}

/** One timer per room: the next reconnect while away, or the session's next deadline. */
function schedule(room) {
  clearTimeout(room.timer);
  const session = room.session;
  if (session.phase === "done") return;
  const at = session.phase === "away" && !room.socket ? session.reconnectAt : session.deadline();
  if (at === null) return;
  room.timer = setTimeout(() => wake(room), Math.max(0, (at - now()) * 1000));
}

function wake(room) {
  if (state.rooms.get(room.name) !== room) return;
  const session = room.session;
  if (session.phase === "away" && !room.socket) {
    connect(room);
  } else {
    apply(room, session.tick(now()));
  }
}

// -- typing ----------------------------------------------------------------------------

// Enter sends; Shift+Enter (or a paste of several lines) makes a message of several lines.
ui.line.addEventListener("keydown", (key) => {
  if (key.key === "Enter" && !key.shiftKey && !key.isComposing) {
    key.preventDefault();
    ui.sendForm.requestSubmit();
  }
});
ui.line.addEventListener("input", fitLine);

ui.sendForm.addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  const room = state.active;
  const text = ui.line.value;
  if (!room || !text.trim()) return;
  // The box is emptied only once the line is taken: a refused one stays, marked.
  if (text.startsWith("/") && !text.startsWith("//")) {
    if (command(room, text)) accepted();
    return;
  }
  const line = text.startsWith("//") ? text.slice(1) : text;
  const actions = room.session.send(line, now());
  if (!actions.some((action) => action.type === "refused")) accepted();
  apply(room, actions);
});

/** The box's text was taken: empty it, and whatever was said about it before. */
function accepted() {
  ui.line.value = "";
  ui.line.removeAttribute("aria-invalid");
  ui.sendProblem.textContent = "";
  fitLine();
}

/** A sentence beside the box, and the control whose text it is about (the message
 * box, unless told) marked; the control keeps its text. */
function problemAtSend(sentence, control = ui.line) {
  control.setAttribute("aria-invalid", "true");
  ui.sendProblem.textContent = sentence;
}

/** A line the server (or the session, knowing its limit) will not take: its text goes
 * back into the box when the box is free, with the sentence beside it. A command from a
 * member's menu (not typed) is told in the room's log instead. */
function refused(room, { text, action, reason, command: isCommand, typed: wasTyped }) {
  if (isCommand && !wasTyped) {
    note(room, "error", reason);
    return;
  }
  const line = action ? `/me ${text}` : text;
  if (room !== state.active) {
    note(room, "error", `${reason} (${excerpt(line)})`);
    return;
  }
  if (!ui.line.value || ui.line.value === line) {
    ui.line.value = line;
    fitLine();
    problemAtSend(reason);
  } else {
    problemAtSend(`${reason} (${excerpt(line)})`);
  }
}

function excerpt(text, most = 40) {
  const first = visible(text.split("\n", 1)[0]);
  return `“${first.length <= most ? first : `${first.slice(0, most - 1)}…`}”`;
}

/** The box grows with its lines, up to a few, then scrolls (and only then). */
function fitLine() {
  const most = 160;
  ui.line.style.height = "auto";
  const needed = ui.line.scrollHeight + ui.line.offsetHeight - ui.line.clientHeight;
  ui.line.style.height = `${Math.min(needed, most)}px`;
  ui.line.classList.toggle("tall", needed > most);
}

/** A command; false when it is refused (the box keeps it, with why beside it). */
function command(room, text) {
  const [word, ...rest] = text.slice(1).split(" ");
  const argument = rest.join(" ").trim();
  const session = room.session;
  const usage = { join: "/join ROOM", me: "/me ACTION", nick: "/nick NAME" };
  if (usage[word] && !argument) {
    problemAtSend(`Usage: ${usage[word]}.`);
    return false;
  }
  if (word === "me") {
    const actions = session.send(argument, now(), true);
    apply(room, actions);
    return !actions.some((action) => action.type === "refused");
  }
  if (word === "join") {
    const problem = roomProblem(argument);
    if (problem) {
      problemAtSend(problem);
      return false;
    }
    openRoom(argument);
  } else if (word === "leave" || word === "part") {
    closeRoom(room, "");
  } else if (word === "nick") {
    const problem = nameProblem(argument);
    if (problem) {
      problemAtSend(problem);
      return false;
    }
    state.name = argument;
    localStorage.setItem("purechat-name", argument);
    for (const each of state.rooms.values()) apply(each, each.session.rename(argument, now()));
  } else if (word === "rooms") {
    apply(room, session.askRooms());
  } else if (word === "who") {
    note(room, "info", `here: ${session.memberList() || "nobody"}`);
  } else if (word === "help") {
    for (const line of HELP) note(room, "info", line);
  } else if (word === "topic" && !argument) {
    note(room, "info", session.topic ? `topic: ${session.topic}` : "This room has no topic.");
  } else if (Object.hasOwn(USAGE, word)) {
    let fields;
    try {
      fields = typed(word, argument, session.members);
    } catch (wrong) {
      if (!(wrong instanceof CommandUsage)) throw wrong;
      problemAtSend(wrong.message);
      return false;
    }
    apply(room, session.moderate(fields, text.trim(), now()));
  } else {
    problemAtSend(`Unknown command /${visible(word)}: /help lists them.`);
    return false;
  }
  return true;
}

/** The first rules a name breaks, if any (the server checks all of them). */
function nameProblem(name) {
  if (name.length > 32) return "Names are at most 32 characters.";
  if (/[\p{Cc}\p{Cf}]/u.test(name)) return "Names cannot contain invisible characters.";
  return "";
}

function note(room, kind, text) {
  show(room, { kind, room: room.name, text, user: "", seq: 0, timeMs: 0 });
}

function listRooms(room, rooms) {
  const entry = line("info", "");
  const listed = span("text", "rooms: ");
  entry.append(listed);
  if (!rooms.length) {
    listed.append("none with members");
  } else {
    rooms.forEach((each, n) => {
      const choice = document.createElement("button");
      choice.type = "button";
      choice.className = "inline";
      choice.textContent = visible(each.name);
      choice.addEventListener("click", () => {
        openRoom(each.name);
        ui.line.focus();
      });
      listed.append(n ? ", " : "", choice, ` (${each.members})`);
    });
  }
  append(room, entry);
}

// -- drawing ---------------------------------------------------------------------------

// Older history: the log shows what came since joining (and the last HISTORY messages
// before). When the server has a request for earlier messages (the conversations issue
// adds one to purechat.v1 and the frames), a scroll to the top of a room's log asks its
// session for the messages before the first one shown, and they are drawn above it,
// with their date separators; nothing else here needs to change.

function show(room, item) {
  const session = room.session;
  if (item.history && !room.inHistory) {
    room.inHistory = true;
    append(room, line("divider", "earlier messages"));
  } else if (!item.history && room.inHistory && item.kind !== "info") {
    room.inHistory = false;
    append(room, line("divider", "new messages"));
  }
  if (item.timeMs && dayOf(item.timeMs) !== room.lastDay) {
    room.lastDay = dayOf(item.timeMs);
    append(room, line("day", dayLabel(item.timeMs)));
  }
  const entry = line(item.kind, "");
  if (item.history) entry.classList.add("history");
  if (item.seq) entry.dataset.seq = String(item.seq);
  if (item.timeMs) {
    const time = document.createElement("time");
    const when = new Date(item.timeMs);
    time.dateTime = when.toISOString();
    time.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    time.title = when.toLocaleString();
    entry.append(time);
  }
  const me = session.myName;
  if (item.kind === "message") {
    entry.dataset.user = item.user;
    const mine = item.user === me;
    const named = !mine && mentions(item.text, me);
    if (mine) entry.classList.add("mine");
    if (named) entry.classList.add("mention");
    if (item.action) entry.classList.add("action");
    const sender = visible(session.shownName(item.user));
    entry.append(span("user", sender), text(item.text, mine ? "" : me));
    if (!item.history && !mine) heard(room, item, sender, named);
  } else if (item.kind === "join" || item.kind === "leave") {
    entry.dataset.user = item.user;
    const what = item.kind === "join" ? " joined" : " left";
    entry.append(span("user", visible(session.shownName(item.user))), what);
  } else if (item.kind === "moderation") {
    // "* bob was banned by alice for 1h: spam", in its place among the messages.
    if (item.moderation?.action) entry.dataset.action = item.moderation.action;
    entry.append(span("text", `* ${visible(item.text)}`));
    if (!item.history && room === state.active) announce(`* ${visible(item.text)}`);
  } else {
    entry.append(span("text", visible(item.text)));
    if (item.kind === "error" && room === state.active) announce(visible(item.text));
  }
  append(room, entry);
}

function append(room, entry) {
  const log = room.log;
  const atBottom = log.hidden || log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(entry);
  while (log.childElementCount > MAX_LINES) log.firstElementChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

/** A message's text: links (http and https only) clickable, my name marked. */
function text(body, me) {
  const part = document.createElement("span");
  part.className = "text";
  for (const piece of pieces(body, me)) {
    if (piece.kind === "link") {
      const link = document.createElement("a");
      link.href = piece.href;
      link.rel = "noopener noreferrer";
      link.target = "_blank";
      link.textContent = piece.text;
      part.append(link);
    } else if (piece.kind === "mention") {
      const mark = document.createElement("mark");
      mark.textContent = piece.text;
      part.append(mark);
    } else {
      part.append(piece.text);
    }
  }
  return part;
}

function line(kind, words) {
  const entry = document.createElement("li");
  entry.className = `line ${kind}`;
  entry.dataset.kind = kind;
  if (words) entry.textContent = words;
  return entry;
}

function span(kind, words) {
  const part = document.createElement("span");
  part.className = kind;
  part.textContent = words;
  return part;
}

/** "reconnecting in 4 s", kept current by a re-render each second while away. */
function countdown(room) {
  clearTimeout(room.countdown);
  const left = Math.max(0, Math.ceil(room.session.reconnectAt - now()));
  if (left > 0) room.countdown = setTimeout(render, 1000);
  return left > 0 ? `reconnecting in ${left} s` : "reconnecting…";
}

function render() {
  const room = state.active;
  if (!room) return;
  const session = room.session;
  ui.roomTitle.textContent = visible(session.room);
  ui.topic.textContent = session.topic ? visible(session.topic) : "";
  ui.topic.hidden = !session.topic;
  let status;
  if (session.phase === "joined") {
    status = `connected as ${visible(session.shownName(session.myName))}`;
  } else if (session.phase === "joining" || room.socket) {
    status = "connecting…";
  } else {
    status = session.trouble ? `${session.trouble}; ${countdown(room)}` : "connecting…";
  }
  if (session.undelivered) status += ` · ${session.undelivered} waiting to be sent`;
  ui.status.textContent = status;
  ui.status.dataset.phase = session.phase;
  const names = [...session.members].sort();
  ui.memberCount.textContent = String(names.length);
  renderMembers(room, names);
  renderPending(session);
  renderRooms();
  ui.notify.hidden = !("Notification" in window) || Notification.permission !== "default";
  const unread = [...state.rooms.values()].reduce((sum, each) => sum + each.unread, 0);
  document.title = `${unread ? `(${unread}) ` : ""}${visible(session.room)} — purechat`;
}

/** Who is here: names, each with a menu (kick, mute, ban, op...) for a moderator.
 * Drawn again only when what it shows changes, so an open menu and the focus stay. */
function renderMembers(room, names) {
  const session = room.session;
  const drawn = JSON.stringify([room.name, session.role, session.myName, names]);
  if (drawn === state.membersDrawn) return;
  const focused = ui.members.contains(document.activeElement)
    ? document.activeElement.dataset.focusKey
    : null;
  state.membersDrawn = drawn;
  ui.members.replaceChildren(
    ...names.map((name, n) => {
      const entry = document.createElement("li");
      const shown = visible(session.shownName(name));
      if (name === session.myName || !session.moderator) {
        entry.textContent = shown;
        if (name === session.myName) entry.classList.add("me");
        return entry;
      }
      const menuId = `member-menu-${n}`;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "member";
      button.textContent = shown;
      button.dataset.user = name;
      button.dataset.focusKey = `member:${name}`;
      button.setAttribute("aria-expanded", String(state.menuOpen === name));
      button.setAttribute("aria-controls", menuId);
      const menu = document.createElement("div");
      menu.id = menuId;
      menu.className = "member-menu";
      menu.setAttribute("role", "group");
      menu.setAttribute("aria-label", `Moderate ${shown}`);
      menu.hidden = state.menuOpen !== name;
      const owner = session.role === "owner" || session.role === "admin";
      for (const [label, action, seconds, ownerOnly] of MENU) {
        if (ownerOnly && !owner) continue;
        const choice = document.createElement("button");
        choice.type = "button";
        choice.textContent = label;
        choice.dataset.action = action;
        choice.dataset.focusKey = `${action}:${seconds}:${name}`;
        choice.addEventListener("click", () => {
          state.menuOpen = "";
          const fields = moderation(action, { target: name, seconds });
          const said = `/${action} ${name}${seconds ? ` ${formatDuration(seconds)}` : ""}`;
          apply(room, room.session.moderate(fields, said, now(), false));
          state.membersDrawn = "";
          render();
          ui.members.querySelector(`[data-focus-key="member:${CSS.escape(name)}"]`)?.focus();
        });
        menu.append(choice);
      }
      button.addEventListener("click", () => {
        state.menuOpen = state.menuOpen === name ? "" : name;
        state.membersDrawn = "";
        render();
        const back = `[data-focus-key="member:${CSS.escape(name)}"]`;
        ui.members.querySelector(state.menuOpen ? `#${menuId} button` : back)?.focus();
      });
      entry.append(button, menu);
      return entry;
    }),
  );
  if (focused) ui.members.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`)?.focus();
}

// Escape closes a member's menu, back on its name.
ui.members.addEventListener("keydown", (key) => {
  if (key.key !== "Escape" || !state.menuOpen) return;
  const name = state.menuOpen;
  state.menuOpen = "";
  state.membersDrawn = "";
  render();
  ui.members.querySelector(`[data-focus-key="member:${CSS.escape(name)}"]`)?.focus();
});

function renderPending(session) {
  const lines = [...session.pending.values()];
  const shown = lines.slice(0, PENDING_SHOWN).map((pending) => {
    const entry = document.createElement("li");
    entry.textContent = `sending… ${visible(pending.action ? `/me ${pending.text}` : pending.text)}`;
    return entry;
  });
  if (lines.length > PENDING_SHOWN) {
    const more = document.createElement("li");
    more.textContent = `… and ${lines.length - PENDING_SHOWN} more`;
    shown.push(more);
  }
  ui.pending.replaceChildren(...shown);
  ui.pending.hidden = shown.length === 0;
}

/** Each room's button: its name, its unread count, a mark when someone named me. */
function renderRooms() {
  for (const room of state.rooms.values()) {
    const button = room.button;
    const parts = [span("room-name", visible(room.name))];
    if (room.unread) {
      const count = span("unread", String(room.unread));
      count.append(span("visually-hidden", " unread"));
      parts.push(count);
    }
    if (room.mentioned) {
      const mark = span("mentioned", "@");
      mark.append(span("visually-hidden", " you were mentioned"));
      parts.push(mark);
    }
    button.replaceChildren(...parts);
    button.dataset.unread = String(room.unread);
    button.dataset.mentioned = String(room.mentioned);
    if (room === state.active) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

// -- what others said: unread counts, the live region, notifications ---------------------

function looking() {
  return !document.hidden && document.hasFocus();
}

function heard(room, item, sender, named) {
  const active = room === state.active;
  if (!active || !looking()) room.unread += 1;
  if (!active && named) room.mentioned = true;
  const said = item.action ? `${sender} ${visible(item.text)}` : `${sender}: ${visible(item.text)}`;
  if (active) announce(said);
  else if (named) announce(`${sender} mentioned you in ${visible(room.name)}`);
  if (named && document.hidden) notify(room, sender, item);
}

function announce(words) {
  const entry = document.createElement("p");
  entry.textContent = words;
  ui.announcer.append(entry);
  while (ui.announcer.childElementCount > ANNOUNCED) ui.announcer.firstElementChild.remove();
}

function notify(room, sender, item) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const body = visible(item.text);
  const shown = new Notification(`${sender} in ${visible(room.name)}`, {
    body: body.length > 200 ? `${body.slice(0, 199)}…` : body,
    tag: `purechat-${room.name}`,
  });
  shown.addEventListener("click", () => {
    window.focus();
    if (state.rooms.get(room.name) === room) activate(room);
  });
}

// Permission is asked for only when the person clicks, never on load.
ui.notify.addEventListener("click", async () => {
  if (!("Notification" in window)) return;
  await Notification.requestPermission();
  render();
  ui.line.focus();
});

function seen() {
  const room = state.active;
  if (room && looking() && room.unread) {
    room.unread = 0;
    render();
  }
}

document.addEventListener("visibilitychange", seen);
window.addEventListener("focus", seen);

// A refused line's mark goes once the box holds what the server would take.
ui.line.addEventListener("input", () => {
  const limit = state.active?.session.maxTextBytes;
  if (limit && ui.line.getAttribute("aria-invalid") && utf8Length(ui.line.value) <= limit) {
    ui.line.removeAttribute("aria-invalid");
    ui.sendProblem.textContent = "";
  }
});
